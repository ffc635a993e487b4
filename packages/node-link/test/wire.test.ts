import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { MAX_CONTROL_BYTES, MAX_HELLO_DATA_BYTES } from '../src/index'
import { encodeControl, parseControl } from '../src/wire'

const enc = new TextEncoder()
const json = (v: unknown) => enc.encode(JSON.stringify(v))

describe('control frames (the only parser of peer control bytes)', () => {
  it('round-trips hello, use and retire', () => {
    const data = Uint8Array.of(1, 2, 3)
    expect(parseControl(encodeControl({ type: 'hello', address: 'ws://1.2.3.4:5', data }))).toEqual({
      type: 'hello',
      address: 'ws://1.2.3.4:5',
      data,
    })
    expect(parseControl(encodeControl({ type: 'use', n: 5, after: 2 }))).toEqual({
      type: 'use',
      n: 5,
      after: 2,
    })
    expect(parseControl(encodeControl({ type: 'retire' }))).toEqual({ type: 'retire' })
  })

  it('drops a hello address that is not a canonical link address, keeping the rest', () => {
    expect(
      parseControl(json({ type: 'hello', address: 'ws://127.0.0.1:1/attacker-chosen-path?x=' })),
    ).toEqual({
      type: 'hello',
      address: undefined,
      data: undefined,
    })
  })

  it('refuses malformed frames', () => {
    for (const bad of [
      { type: 'use', n: 0 },
      { type: 'use', n: 1.5 },
      { type: 'use', n: 2 ** 53 },
      { type: 'use', n: 5, after: 5 },
      { type: 'use', n: 5, after: -1 },
      { type: 'hello', data: 'not base64!' },
      { type: 'hello', data: 'A'.repeat(Math.ceil(MAX_HELLO_DATA_BYTES / 3) * 4 + 4) },
      { type: 'nope' },
      [1, 2],
      null,
      'retire',
    ]) {
      expect(parseControl(json(bad)), JSON.stringify(bad)).toBeUndefined()
    }
    expect(parseControl(new Uint8Array(0))).toBeUndefined()
    expect(parseControl(Uint8Array.of(0xff, 0xfe))).toBeUndefined()
    expect(parseControl(json({ type: 'retire', pad: 'x'.repeat(MAX_CONTROL_BYTES) }))).toBeUndefined()
  })

  it('never throws on arbitrary bytes or JSON', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        parseControl(bytes)
      }),
    )
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom('hello', 'use', 'retire'), (value, type) => {
        const msg =
          typeof value === 'object' && value !== null && !Array.isArray(value) ? { ...value, type } : value
        const parsed = parseControl(json(msg))
        if (parsed?.type === 'use') expect(parsed.after).toBeLessThan(parsed.n)
      }),
    )
  })
})
