/**
 * The dashboard and the demo over TLS in a real headless Chromium: https for the pages and the REST API, wss for
 * signaling and documents. The certificate comes from a CA this test makes; Chromium accepts it by its public key
 * (`--ignore-certificate-errors-spki-list`, the way to trust a test certificate without touching the system's
 * trust store). On Node 24 the TLS key exchange is X25519MLKEM768, which current Chromium offers first.
 */
import { rmSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  collectErrors,
  HAVE_CHROMIUM,
  launchBrowser,
  screenshot,
  type BrowserHandle,
} from './helpers/browser'
import { createTestCa, type TestCa } from './helpers/test-ca'
import { ensureWebBuilt, startWebNode, type WebNode } from './helpers/web-nodes'

let browser: BrowserHandle | undefined
let ca: TestCa | undefined
let node: WebNode | undefined

beforeAll(async () => {
  if (!HAVE_CHROMIUM) return
  await ensureWebBuilt()
  ca = createTestCa()
  const leaf = ca.issue('localhost')
  node = await startWebNode([], ['--tls-cert', leaf.cert, '--tls-key', leaf.key])
  browser = await launchBrowser([`--ignore-certificate-errors-spki-list=${leaf.spkiSha256}`])
}, 60_000)

afterAll(async () => {
  await browser?.close()
  await node?.stop()
  if (ca !== undefined) rmSync(ca.dir, { recursive: true, force: true })
}, 30_000)

describe.skipIf(!HAVE_CHROMIUM)('the dashboard and the demo over https and wss', () => {
  it('loads the dashboard over https and registers the demo over wss', async () => {
    const errors: string[] = []
    const base = `https://localhost:${node!.node.addresses.rest.port}`
    const page = await browser!.context.newPage()
    collectErrors(page, errors)
    const response = await page.goto(`${base}/`)
    expect(response?.status()).toBe(200)
    expect(response?.url()).toMatch(/^https:/)
    await page.locator('[data-testid=overall-status] [data-status=ok]').waitFor({ timeout: 10_000 })
    expect(await page.locator('#crypto').innerText()).toContain('ML-KEM-1024+ML-DSA-87')
    await screenshot(page, 'dashboard-https')

    const topic = `tls${Date.now()}`
    const demo = await browser!.context.newPage()
    collectErrors(demo, errors)
    await demo.goto(`${base}/demo?topic=${topic}&doc=doc-${topic}`)
    // The demo asked /demo/config.json for the node's WebSocket base: wss, since the page came over https.
    await demo
      .locator('#steps li[data-state=done]', { hasText: 'Registering at wss://' })
      .waitFor({ timeout: 15_000 })
    await demo
      .locator('#steps li[data-state=done]', { hasText: 'Joining topic' })
      .waitFor({ timeout: 15_000 })
    await demo.locator('#shared:not([disabled])').waitFor({ timeout: 10_000 })
    await screenshot(demo, 'demo-wss')
    expect(errors).toEqual([])
  })
})
