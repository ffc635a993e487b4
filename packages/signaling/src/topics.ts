/**
 * The topic table: which connections are members of which topic (keys are `<namespace>:<topic>`, so the native
 * and y-webrtc endpoints never share one), within the per-connection, per-address and global caps.
 */
import type { AddressShares } from './admission'
import type { Conn } from './connection'
import type { SignalingOptions } from './options'

export class TopicTable {
  readonly #options: SignalingOptions
  readonly #shares: AddressShares
  readonly #members = new Map<string, Set<Conn>>()

  constructor(options: SignalingOptions, shares: AddressShares) {
    this.#options = options
    this.#shares = shares
  }

  /** Topics with at least one member. */
  get size(): number {
    return this.#members.size
  }

  /** Adds `conn` to topic `key`; false when a cap is reached (a repeated join is true and changes nothing). */
  join(conn: Conn, key: string): boolean {
    conn.topics ??= new Set()
    if (conn.topics.has(key)) return true
    if (conn.topics.size >= this.#options.maxTopicsPerConnection) return false
    if (conn.share.topics >= this.#options.maxTopicsPerAddress) return false
    let members = this.#members.get(key)
    if (members === undefined) {
      if (this.#members.size >= this.#options.maxTopics) return false
      members = new Set()
      this.#members.set(key, members)
    }
    members.add(conn)
    conn.topics.add(key)
    conn.share.topics++
    return true
  }

  /** Removes `conn` from topic `key`; false if it was not a member. */
  leave(conn: Conn, key: string): boolean {
    if (conn.topics?.delete(key) !== true) return false
    conn.share.topics--
    const members = this.#members.get(key)
    members?.delete(conn)
    if (members?.size === 0) this.#members.delete(key)
    return true
  }

  /** Removes `conn` from every topic. */
  drop(conn: Conn): void {
    if (conn.topics === undefined) return
    for (const key of [...conn.topics]) this.leave(conn, key)
    conn.topics = undefined
    this.#shares.release(conn.share)
  }

  /** The members of topic `key`. */
  members(key: string): ReadonlySet<Conn> | undefined {
    return this.#members.get(key)
  }
}
