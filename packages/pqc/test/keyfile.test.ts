import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isPqcError } from '../src/errors'
import { exportIdentitySeed, Identity } from '../src/identity'
import { decodeKeyFile, encodeKeyFile, KEYFILE_VERSION } from '../src/keyfile'
import { readKeyFile, writeKeyFile } from '../src/keyfile-fs'
import { createStaticKeys } from '../src/session/certificate'
import { sha256 } from '../src/kdf'

const FAST = { logN: 10, r: 8, p: 1 } // tests only: the default is logN 17
let identity: Identity
let dir: string

beforeAll(async () => {
  identity = Identity.generate(new Uint8Array(32).fill(7))
  dir = await mkdtemp(join(tmpdir(), 'pqc-keyfile-'))
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p
  } catch (e) {
    return isPqcError(e) ? e.code : `not a PqcError: ${String(e)}`
  }
  return undefined
}

/** Recompute the trailing checksum so a field change reaches the field checks instead of the checksum. */
function resum(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice()
  out.set(sha256(out.subarray(0, out.length - 32)), out.length - 32)
  return out
}

describe('key file codec', () => {
  it('round-trips a plain file: same identity, same static keys', async () => {
    const staticKeys = createStaticKeys(identity, new Uint8Array(32).fill(8))
    const bytes = await encodeKeyFile({ identity, staticKeys })
    expect(bytes).toHaveLength(136)
    const back = await decodeKeyFile(bytes)
    expect(back.encrypted).toBe(false)
    expect(back.identity.publicKey).toEqual(identity.publicKey)
    expect(back.staticKeys.publicKey).toEqual(staticKeys.publicKey)
    expect(back.staticKeys.secretKey).toEqual(staticKeys.secretKey)
  })

  it('round-trips an encrypted file and rejects a wrong or missing passphrase', async () => {
    const bytes = await encodeKeyFile({ identity }, { passphrase: 'correct horse', scrypt: FAST })
    expect(bytes).toHaveLength(152)
    // The seed does not appear in clear.
    expect(Buffer.from(bytes).includes(Buffer.from(exportIdentitySeed(identity)))).toBe(false)
    const back = await decodeKeyFile(bytes, { passphrase: 'correct horse' })
    expect(back.encrypted).toBe(true)
    expect(back.identity.idString).toBe(identity.idString)
    expect(await codeOf(decodeKeyFile(bytes, { passphrase: 'wrong horse' }))).toBe(
      'X_PQC_KEYFILE_BAD_PASSPHRASE',
    )
    expect(await codeOf(decodeKeyFile(bytes))).toBe('X_PQC_KEYFILE_BAD_PASSPHRASE')
  })

  it('normalises string passphrases (NFKC)', async () => {
    const bytes = await encodeKeyFile({ identity }, { passphrase: 'caf\u00e9', scrypt: FAST })
    const back = await decodeKeyFile(bytes, { passphrase: 'cafe\u0301' })
    expect(back.identity.idString).toBe(identity.idString)
  })

  it('uses the documented default scrypt cost (N = 2^17, r = 8, p = 1)', async () => {
    const bytes = await encodeKeyFile({ identity }, { passphrase: 'x' })
    expect([...bytes.subarray(6, 10)]).toEqual([1, 17, 8, 1])
  }, 20_000)

  it('reports corruption in every byte region with a typed error', async () => {
    for (const encrypted of [false, true]) {
      const bytes = await encodeKeyFile({ identity }, encrypted ? { passphrase: 'pw', scrypt: FAST } : {})
      // Every byte: magic, version, flags, KDF fields, salt, nonce, length, body, checksum.
      for (let i = 0; i < bytes.length; i++) {
        const bad = bytes.slice()
        bad[i]! ^= 0x01
        const code = await codeOf(decodeKeyFile(bad, { passphrase: 'pw' }))
        expect([i, code]).toEqual([i, 'X_PQC_KEYFILE_CORRUPT'])
      }
      expect(await codeOf(decodeKeyFile(bytes.subarray(0, bytes.length - 1), { passphrase: 'pw' }))).toBe(
        'X_PQC_KEYFILE_CORRUPT',
      )
      expect(await codeOf(decodeKeyFile(new Uint8Array(0)))).toBe('X_PQC_KEYFILE_CORRUPT')
    }
  })

  it('with a valid checksum, rejects bad fields as corrupt, a changed header as a bad passphrase, and an unknown version', async () => {
    const plain = await encodeKeyFile({ identity })
    const future = plain.slice()
    future[4] = KEYFILE_VERSION + 1
    expect(await codeOf(decodeKeyFile(resum(future)))).toBe('X_PQC_KEYFILE_VERSION')
    const flags = plain.slice()
    flags[5] = 0x80
    expect(await codeOf(decodeKeyFile(resum(flags)))).toBe('X_PQC_KEYFILE_CORRUPT')
    const enc = await encodeKeyFile({ identity }, { passphrase: 'pw', scrypt: FAST })
    const huge = enc.slice()
    huge[7] = 30 // 2^30 × 128 × 8 bytes: refused before allocating
    expect(await codeOf(decodeKeyFile(resum(huge), { passphrase: 'pw' }))).toBe('X_PQC_KEYFILE_CORRUPT')
    const salt = enc.slice()
    salt[12]! ^= 1 // authenticated header: a consistent but altered file does not open
    expect(await codeOf(decodeKeyFile(resum(salt), { passphrase: 'pw' }))).toBe(
      'X_PQC_KEYFILE_BAD_PASSPHRASE',
    )
  })

  it('checks arguments', async () => {
    await expect(encodeKeyFile({ identity }, { passphrase: 'x', scrypt: { logN: 4 } })).rejects.toThrow(
      RangeError,
    )
    await expect(encodeKeyFile({ identity: {} as Identity })).rejects.toThrow(TypeError)
  })
})

describe('key file I/O', () => {
  it('writes with mode 0600 and reads back', async () => {
    const path = join(dir, 'node.key')
    await writeKeyFile(path, { identity }, { passphrase: 'pw', scrypt: FAST })
    expect((await stat(path)).mode & 0o777).toBe(0o600)
    const back = await readKeyFile(path, { passphrase: 'pw' })
    expect(back.identity.idString).toBe(identity.idString)
    expect(await readdir(dir)).toEqual(['node.key'])
  })

  it('is atomic: a failure before the rename leaves the old file intact and no temp file', async () => {
    const path = join(dir, 'atomic.key')
    await writeKeyFile(path, { identity })
    const before = await readFile(path)
    const other = Identity.generate(new Uint8Array(32).fill(9))
    let seenTemp = ''
    await expect(
      writeKeyFile(
        path,
        { identity: other },
        {
          _beforeRename: async (temp) => {
            seenTemp = temp
            // The complete new file exists only under the temp name at this point.
            expect((await stat(temp)).size).toBe(136)
            throw new Error('simulated crash before rename')
          },
        },
      ),
    ).rejects.toThrow('simulated crash')
    expect(seenTemp).not.toBe('')
    expect(await readFile(path)).toEqual(before)
    expect((await readdir(dir)).filter((f) => f.includes('atomic'))).toEqual(['atomic.key'])
    expect((await readKeyFile(path)).identity.idString).toBe(identity.idString)
  })

  it('rejects an oversized or truncated file on disk with X_PQC_KEYFILE_CORRUPT', async () => {
    const big = join(dir, 'big.key')
    await writeFile(big, new Uint8Array(10_000))
    expect(await codeOf(readKeyFile(big))).toBe('X_PQC_KEYFILE_CORRUPT')
    const cut = join(dir, 'cut.key')
    await writeFile(cut, (await encodeKeyFile({ identity })).subarray(0, 100))
    expect(await codeOf(readKeyFile(cut))).toBe('X_PQC_KEYFILE_CORRUPT')
  })
})
