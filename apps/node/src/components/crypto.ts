import { access, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import {
  Identity,
  createPqcWorkerPool,
  createStaticKeys,
  getStatus as pqcStatus,
  initPqc,
  readKeyFile,
  writeKeyFile,
  type PqcWorkerPool,
  type StaticKeys,
} from '@x/pqc'
import { RecordSigner } from '../records/format'
import type { Component } from '../system'
import type { NodeCore } from './core'

export const KEY_FILE = 'identity.key'

export interface CryptoProduct {
  readonly identity: Identity
  readonly staticKeys: StaticKeys
  readonly keyFileEncrypted: boolean
  /** ML-DSA work off the event loop: handshakes, certificates, record signatures, peer statements. */
  readonly pool: PqcWorkerPool
  /** The ML-DSA-44 record key (an `@x/pqc` signing subkey) and its certificate. */
  readonly signer: RecordSigner
}

/** The backend self-test, the identity (loaded or created in the data directory) and the worker pool. */
export const cryptoComponent: Component<NodeCore, CryptoProduct> = {
  async start({ config, dataDir, log }) {
    await mkdir(dataDir, { recursive: true, mode: 0o700 })
    await initPqc({ logger: log.child({ component: 'crypto' }) })
    const keyPath = join(dataDir, KEY_FILE)
    const passphrase = config.passphrase === '' ? undefined : config.passphrase
    const exists = await access(keyPath).then(
      () => true,
      () => false,
    )
    let identity: Identity
    let staticKeys: StaticKeys
    let keyFileEncrypted: boolean
    if (exists) {
      const decoded = await readKeyFile(keyPath, passphrase === undefined ? {} : { passphrase })
      identity = decoded.identity
      staticKeys = decoded.staticKeys
      keyFileEncrypted = decoded.encrypted
      log.info({ nodeId: identity.idString, encrypted: keyFileEncrypted }, 'identity loaded')
    } else {
      identity = Identity.generate()
      staticKeys = createStaticKeys(identity)
      await writeKeyFile(keyPath, { identity, staticKeys }, passphrase === undefined ? {} : { passphrase })
      keyFileEncrypted = passphrase !== undefined
      log.info({ nodeId: identity.idString, encrypted: keyFileEncrypted, keyPath }, 'identity created')
    }
    const pool = createPqcWorkerPool({ logger: log.child({ component: 'pqc-pool' }) })
    return { identity, staticKeys, keyFileEncrypted, pool, signer: new RecordSigner(identity) }
  },
  async stop({ pool }) {
    await pool.close()
  },
  health:
    ({ identity, pool }) =>
    () => {
      const s = pqcStatus()
      return {
        status: s.initialized ? 'ok' : 'down',
        backend: s.backend,
        production: s.production,
        nodeId: identity.idString,
        pool: pool.stats(),
      }
    },
}
