import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodeMessage, encodeMessage, MAX_DATAGRAM_BYTES, type Message, MessageType } from '../src/codec'

const arbId = fc.uint8Array({ minLength: 20, maxLength: 20 })
const arbAddress = fc.stringMatching(/^[\x21-\x7e]{1,64}$/)
const header = { requestId: fc.nat({ max: 0xffffffff }), senderId: arbId }
const arbMessage: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ type: fc.constant(MessageType.PING), ...header }),
  fc.record({ type: fc.constant(MessageType.PONG), ...header }),
  fc.record({ type: fc.constant(MessageType.FIND_NODE), ...header, target: arbId }),
  fc.record({ type: fc.constant(MessageType.FIND_VALUE), ...header, key: arbId }),
  fc.record({
    type: fc.constant(MessageType.STORE),
    ...header,
    key: arbId,
    token: fc.uint8Array({ maxLength: 32 }),
    ttlMs: fc.nat({ max: 0xffffffff }),
    value: fc.uint8Array({ maxLength: 4096 }),
  }),
  fc.record({
    type: fc.constant(MessageType.NODES),
    ...header,
    token: fc.uint8Array({ maxLength: 32 }),
    contacts: fc.array(fc.record({ id: arbId, address: arbAddress }), { maxLength: 32 }),
    record: fc.option(
      fc.record({ ttlMs: fc.nat({ max: 0xffffffff }), value: fc.uint8Array({ maxLength: 1024 }) }),
      {
        nil: undefined,
      },
    ),
  }),
  fc.record({ type: fc.constant(MessageType.STORED), ...header, status: fc.nat({ max: 255 }) }),
)

describe('codec', () => {
  it('round-trips every message (property)', () => {
    fc.assert(
      fc.property(arbMessage, (msg) => {
        const bytes = encodeMessage(msg)
        expect(bytes.length).toBeLessThanOrEqual(MAX_DATAGRAM_BYTES)
        expect(decodeMessage(bytes)).toEqual(msg)
      }),
      { numRuns: 500 },
    )
  })

  it('rejects every truncation and any trailing byte', () => {
    fc.assert(
      fc.property(arbMessage, (msg) => {
        const bytes = encodeMessage(msg)
        for (let cut = 0; cut < bytes.length; cut += Math.max(1, bytes.length >> 4)) {
          expect(decodeMessage(bytes.subarray(0, cut))).toBeUndefined()
        }
        const longer = new Uint8Array(bytes.length + 1)
        longer.set(bytes)
        expect(decodeMessage(longer)).toBeUndefined()
      }),
      { numRuns: 200 },
    )
  })

  it('never throws on random bytes (fuzz)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 10_000 }), (bytes) => {
        expect(() => decodeMessage(bytes)).not.toThrow()
      }),
      { numRuns: 2000 },
    )
    // Random bodies behind a valid header reach the deep paths of the decoder.
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 9 }), fc.uint8Array({ maxLength: 2000 }), (type, body) => {
        const bytes = new Uint8Array(26 + body.length)
        bytes[0] = 1
        bytes[1] = type
        bytes.set(body, 26)
        expect(() => decodeMessage(bytes)).not.toThrow()
      }),
      { numRuns: 3000 },
    )
  })

  it('checks the version byte and the size bound first', () => {
    const ping = encodeMessage({ type: MessageType.PING, requestId: 1, senderId: new Uint8Array(20) })
    const wrong = ping.slice()
    wrong[0] = 2
    expect(decodeMessage(wrong)).toBeUndefined()
    expect(decodeMessage(new Uint8Array(MAX_DATAGRAM_BYTES + 1))).toBeUndefined()
  })

  it('refuses to encode out-of-bound fields', () => {
    expect(() =>
      encodeMessage({
        type: MessageType.NODES,
        requestId: 1,
        senderId: new Uint8Array(20),
        token: new Uint8Array(0),
        contacts: [{ id: new Uint8Array(20), address: 'a b' }],
      }),
    ).toThrow(RangeError)
  })
})
