/**
 * The application channels this node uses on `@x/node-link` links (0x01 is the link's own control channel).
 *
 * | byte | channel |
 * | ---- | ------- |
 * | 0x02 | signaling federation (`NodeRelay` text frames) |
 * | 0x03 | CRDT replication (`SyncLink` bytes) |
 * | 0x04 | peer proofs for DHT records (`records/proofs.ts`) |
 */
export const CHANNEL_SIGNALING = 0x02
export const CHANNEL_CRDT = 0x03
export const CHANNEL_RECORDS = 0x04
