import { readFileSync } from 'node:fs'
import { createSecureContext, type SecureContextOptions, type Server as TlsServer } from 'node:tls'
import { ConfigError } from './config'

/**
 * TLS for the REST and WebSocket ports, post-quantum where the runtime allows: the hybrid key exchange
 * `X25519MLKEM768` (ML-KEM-768 with X25519, draft-ietf-tls-ecdhe-mlkem, what current Chrome, Firefox and Safari
 * offer first) is put ahead of the classical groups when Node's OpenSSL has it (Node ≥ 24.7 with OpenSSL 3.5).
 * Certificates are read from files and re-read on SIGHUP without a restart.
 */

/** The hybrid post-quantum TLS 1.3 group. */
export const PQ_TLS_GROUP = 'X25519MLKEM768'
/** Classical groups, in preference order, after the post-quantum one. */
export const CLASSICAL_TLS_GROUPS = ['X25519', 'P-256', 'P-384'] as const

let supported: boolean | undefined

/** Whether this runtime's OpenSSL offers `X25519MLKEM768` (tested once). */
export function pqTlsSupported(): boolean {
  if (supported === undefined) {
    try {
      createSecureContext({ ecdhCurve: PQ_TLS_GROUP })
      supported = true
    } catch {
      supported = false
    }
  }
  return supported
}

/** The groups the node offers, most preferred first. */
export function tlsGroups(): string[] {
  return pqTlsSupported() ? [PQ_TLS_GROUP, ...CLASSICAL_TLS_GROUPS] : [...CLASSICAL_TLS_GROUPS]
}

/** What `/api/crypto/status` reports of TLS. */
export interface TlsStatus {
  enabled: boolean
  /** Groups offered for the key exchange, most preferred first (empty when TLS is off). */
  groups: string[]
  /** Whether the first group is the hybrid post-quantum one. */
  postQuantum: boolean
}

export function tlsStatus(enabled: boolean): TlsStatus {
  const groups = enabled ? tlsGroups() : []
  return { enabled, groups, postQuantum: groups[0] === PQ_TLS_GROUP }
}

/**
 * Reads the certificate chain and key and builds the server options (TLS 1.2+, the groups above). Throws a
 * `ConfigError` naming `tlsCert` or `tlsKey` when a file cannot be read or the pair is not usable.
 */
export function loadTlsOptions(
  files: { tlsCert: string; tlsKey: string },
  readFile: (path: string) => Buffer = (path) => readFileSync(path),
): SecureContextOptions {
  const read = (setting: 'tlsCert' | 'tlsKey'): Buffer => {
    try {
      return readFile(files[setting])
    } catch (err) {
      throw new ConfigError(
        `cannot read setting '${setting}' (${files[setting]}): ${(err as Error).message}`,
        setting,
        'the TLS files',
      )
    }
  }
  const options: SecureContextOptions = {
    cert: read('tlsCert'),
    key: read('tlsKey'),
    minVersion: 'TLSv1.2',
    ecdhCurve: tlsGroups().join(':'),
  }
  try {
    createSecureContext(options)
  } catch (err) {
    throw new ConfigError(
      `TLS certificate and key are not usable together: ${(err as Error).message}`,
      'tlsCert',
      'the TLS files',
    )
  }
  return options
}

/**
 * Re-reads the files and swaps every server's secure context (connections already open keep theirs). Throws like
 * {@link loadTlsOptions}; the servers keep the old context then.
 */
export function reloadTls(servers: readonly TlsServer[], files: { tlsCert: string; tlsKey: string }): void {
  const options = loadTlsOptions(files)
  for (const server of servers) server.setSecureContext(options)
}
