/**
 * Key-file I/O for Node: atomic write (temp file in the same directory, mode 0600, fsync, rename, fsync of the
 * directory) and read. `node:fs` is reached through `process.getBuiltinModule`, never a static import, so a
 * browser bundle that includes this module still builds; calling it outside Node throws a TypeError.
 */
import type * as NodeFs from 'node:fs/promises'
import type * as NodePath from 'node:path'
import { randomBytes } from './kdf'
import { toHex } from './bytes'
import { PqcError } from './errors'
import {
  type DecodeKeyFileOptions,
  type DecodedKeyFile,
  type EncodeKeyFileOptions,
  type KeyFileKeys,
  decodeKeyFile,
  encodeKeyFile,
} from './keyfile'

/** Key files are tiny; refuse to read anything larger. */
const MAX_KEYFILE_READ_BYTES = 4096
const KEYFILE_MODE = 0o600

/** Test hooks for {@link writeKeyFile}. */
export interface WriteKeyFileOptions extends EncodeKeyFileOptions {
  /** @internal Called after the temp file is written and synced, before the rename (tests simulate failures). */
  _beforeRename?: (tempPath: string) => void | Promise<void>
}

interface NodeModules {
  fs: typeof NodeFs
  path: typeof NodePath
}

function node(): NodeModules {
  const p = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process
  const fs = p?.getBuiltinModule?.('node:fs/promises') as typeof NodeFs | undefined
  const path = p?.getBuiltinModule?.('node:path') as typeof NodePath | undefined
  if (fs === undefined || path === undefined)
    throw new TypeError('key file I/O needs Node >= 20.16 (process.getBuiltinModule)')
  return { fs, path }
}

/**
 * Write a key file atomically: readers see the old file or the complete new one, never a partial file; on any
 * failure the temp file is removed and the error is rethrown. The file is created with mode 0600.
 */
export async function writeKeyFile(
  filePath: string,
  keys: KeyFileKeys,
  options: WriteKeyFileOptions = {},
): Promise<void> {
  if (typeof filePath !== 'string' || filePath === '')
    throw new TypeError('"filePath" must be a non-empty string')
  const { fs, path } = node()
  const bytes = await encodeKeyFile(keys, options)
  const dir = path.dirname(path.resolve(filePath))
  const tempPath = path.join(dir, `.${path.basename(filePath)}.${toHex(randomBytes(6))}.tmp`)
  let handle: NodeFs.FileHandle | undefined
  try {
    handle = await fs.open(tempPath, 'wx', KEYFILE_MODE)
    await handle.writeFile(bytes)
    await handle.sync()
    await handle.close()
    handle = undefined
    await options._beforeRename?.(tempPath)
    await fs.rename(tempPath, filePath)
  } catch (err) {
    await handle?.close().catch(() => undefined)
    await fs.rm(tempPath, { force: true }).catch(() => undefined)
    throw err
  }
  // Make the rename itself durable. Not every platform can open a directory (Windows): best effort.
  try {
    const d = await fs.open(dir, 'r')
    try {
      await d.sync()
    } finally {
      await d.close()
    }
  } catch {
    // ignore: the data is already synced; only the directory entry's durability is at stake
  }
}

/** Read and decode a key file (see `decodeKeyFile` for the errors). */
export async function readKeyFile(
  filePath: string,
  options: DecodeKeyFileOptions = {},
): Promise<DecodedKeyFile> {
  if (typeof filePath !== 'string' || filePath === '')
    throw new TypeError('"filePath" must be a non-empty string')
  const { fs } = node()
  const handle = await fs.open(filePath, 'r')
  let bytes: Uint8Array
  try {
    const { size } = await handle.stat()
    if (size > MAX_KEYFILE_READ_BYTES) {
      throw new PqcError('X_PQC_KEYFILE_CORRUPT', `key file of ${size} bytes is too large`)
    }
    const buf = await handle.readFile()
    bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.length)
  } finally {
    await handle.close()
  }
  return decodeKeyFile(bytes, options)
}
