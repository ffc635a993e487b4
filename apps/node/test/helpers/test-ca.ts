/**
 * A throw-away certificate authority for TLS tests, made with the `openssl` command line (OpenSSL 3 is on every
 * machine of this kind): an EC P-256 CA and leaf certificates it signs for 127.0.0.1 and localhost.
 */
import { execFileSync } from 'node:child_process'
import { createHash, X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface TestCa {
  dir: string
  caCert: string
  /** Issues a leaf for 127.0.0.1 and localhost; returns the paths of its PEM files. */
  issue(name: string): { cert: string; key: string; pem: Buffer; spkiSha256: string }
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] })
}

export function createTestCa(): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'x-test-ca-'))
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir)
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-sha256',
      '-days',
      '2',
      '-subj',
      '/CN=x test CA',
      '-out',
      'ca.pem',
    ],
    dir,
  )
  writeFileSync(
    join(dir, 'leaf.ext'),
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' +
      'subjectAltName=IP:127.0.0.1,DNS:localhost\n',
  )
  return {
    dir,
    caCert: join(dir, 'ca.pem'),
    issue(name) {
      openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`], dir)
      openssl(['req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`], dir)
      openssl(
        [
          'x509',
          '-req',
          '-in',
          `${name}.csr`,
          '-CA',
          'ca.pem',
          '-CAkey',
          'ca.key',
          '-CAcreateserial',
          '-days',
          '2',
        ].concat(['-sha256', '-extfile', 'leaf.ext', '-out', `${name}.pem`]),
        dir,
      )
      const pem = readFileSync(join(dir, `${name}.pem`))
      const spki = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' })
      return {
        cert: join(dir, `${name}.pem`),
        key: join(dir, `${name}.key`),
        pem,
        spkiSha256: createHash('sha256').update(spki).digest('base64'),
      }
    },
  }
}
