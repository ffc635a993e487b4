/**
 * The dashboard and the demo in a real headless Chromium (Debian's, through playwright-core) against real nodes
 * (`createNode`, real sockets on 127.0.0.1). Screenshots of every page land in apps/node/.artifacts/.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import {
  collectErrors,
  HAVE_CHROMIUM,
  launchBrowser,
  screenshot,
  type BrowserHandle,
} from './helpers/browser'
import { ensureWebBuilt, startWebNode, waitFor, type WebNode } from './helpers/web-nodes'

const DEMO_BAR_MS = 3_000 // the bar: the two-tab demo works within 3 s of opening the second tab

let browser: BrowserHandle | undefined
const nodes: WebNode[] = []

beforeAll(async () => {
  if (!HAVE_CHROMIUM) return
  await ensureWebBuilt()
  browser = await launchBrowser()
}, 60_000)

afterAll(async () => {
  await browser?.close()
  await Promise.all(nodes.splice(0).map((n) => n.stop()))
}, 30_000)

/** Waits until the shared textarea of `page` holds `expected`; the error names what it holds instead. */
async function waitForShared(page: Page, expected: string, timeoutMs: number): Promise<void> {
  try {
    await page.waitForFunction(
      (want) => (document.getElementById('shared') as HTMLTextAreaElement).value === want,
      expected,
      { timeout: timeoutMs },
    )
  } catch {
    const actual = await page.locator('#shared').inputValue()
    throw new Error(
      `shared text on ${page.url()} is ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`,
    )
  }
}

async function openPage(url: string, errors: string[]): Promise<Page> {
  const page = await browser!.context.newPage()
  collectErrors(page, errors)
  await page.goto(url)
  return page
}

describe.skipIf(!HAVE_CHROMIUM)('dashboard in Chromium', () => {
  it('shows ok for a healthy node, then the failing component and its reason, then that the node is gone', async () => {
    const n = await startWebNode()
    nodes.push(n)
    const errors: string[] = []
    const page = await openPage(`${n.url}/`, errors)

    await page.locator('[data-testid=overall-status] [data-status=ok]').waitFor({ timeout: 10_000 })
    for (const name of ['crypto', 'signaling', 'dht', 'p2p', 'storage', 'ai']) {
      await page.locator(`[data-component=${name}]`).waitFor()
    }
    expect(await page.locator('[data-component=crypto]').getAttribute('data-status')).toBe('ok')
    expect(await page.locator('[data-component=ai]').getAttribute('data-status')).toBe('ok') // on by default
    // The AI engine's panel: on, and nothing flagged on a fresh node.
    await page.locator('[data-testid=ai-flagged] p', { hasText: 'none' }).waitFor()
    expect(await page.locator('[data-testid=ai-flagged]').innerText()).toBe('none')
    expect(await page.locator('.bucket').count()).toBe(160)
    expect(await page.locator('#crypto').innerText()).toContain('ML-KEM-1024+ML-DSA-87')
    expect(await page.locator('#crypto').innerText()).toContain('2592 bytes')
    expect(await page.locator('#version').innerText()).toBe('0.1.0')
    await screenshot(page, 'dashboard-ok')
    await page.setViewportSize({ width: 390, height: 844 })
    await screenshot(page, 'dashboard-ok-phone')
    await page.setViewportSize({ width: 1100, height: 900 })

    // Make the storage component fail for real: close the node's LevelDB under it.
    await n.node.internals.storage?.db.close()
    const storage = page.locator('[data-component=storage][data-status=down]')
    await storage.waitFor({ timeout: 10_000 })
    expect(await storage.locator('.reason').innerText()).toContain('database closed')
    await page.locator('[data-testid=overall-status] [data-status=down]').waitFor()
    await screenshot(page, 'dashboard-failing')

    // The node goes away entirely: the page says so plainly and keeps retrying.
    await n.stop()
    await page.locator('#banner:not([hidden])').waitFor({ timeout: 15_000 })
    expect(await page.locator('#banner').innerText()).toMatch(/Node unreachable/)
    await screenshot(page, 'dashboard-unreachable')
    await page.close()
    expect(
      errors.filter((e) => !e.includes('Failed to load resource') && !e.includes('ERR_CONNECTION_REFUSED')),
    ).toEqual([])
  })
})

describe.skipIf(!HAVE_CHROMIUM)('demo in Chromium on a three-node network', () => {
  it('two pages on different nodes chat over a WebRTC data channel and share a Yjs text', async () => {
    // The three nodes are one operator's network: they replicate documents with each other (the default is
    // with no node), as the testnet does.
    const trustAll = ['--crdt-nodes', '*']
    const a = await startWebNode([], trustAll)
    nodes.push(a)
    const b = await startWebNode([a.dhtAddress], trustAll)
    nodes.push(b)
    const c = await startWebNode([a.dhtAddress, b.dhtAddress], trustAll)
    nodes.push(c)
    // The network is formed when every node holds exactly one open P2P link to each other node: right after
    // start-up, two nodes may dial each other at once and then close the duplicate link, and a frame sent on the
    // closing link is lost (see the report of this test's author).
    await waitFor('one open P2P link between each pair of nodes', async () => {
      for (const n of [a, b, c]) {
        const peers = (await (await fetch(`${n.url}/api/peers`)).json()) as {
          list: { id: string; kind: string; state: string }[]
        }
        const links = peers.list.filter((p) => p.kind === 'p2p-link')
        const open = links.filter((p) => p.state === 'open')
        if (open.length !== 2 || links.length !== 2 || new Set(open.map((p) => p.id)).size !== 2) return false
      }
      return true
    })
    const topic = `t${Date.now()}`
    const query = `?topic=${topic}&doc=doc-${topic}`
    const errors: string[] = []
    const pageA = await openPage(`${a.url}/demo${query}`, errors)
    await pageA
      .locator('#steps li[data-state=done]', { hasText: 'Joining topic' })
      .waitFor({ timeout: 15_000 })
    await pageA.locator('#shared:not([disabled])').waitFor({ timeout: 10_000 })
    await pageA.locator('#shared').pressSequentially('alpha')

    const opened = Date.now()
    const pageC = await openPage(`${c.url}/demo${query}`, errors)
    // Within the bar: a data channel open on both sides, and A's text on C. The text is checked softly (at the
    // end) so that a replication failure does not hide what the rest of the demo does.
    const since = (): number => Date.now() - opened
    const [channelMs, [firstTextError, textMs]] = await Promise.all([
      Promise.all([
        pageA.locator('[data-peer][data-channel=open]').waitFor({ timeout: 15_000 }),
        pageC.locator('[data-peer][data-channel=open]').waitFor({ timeout: 15_000 }),
      ]).then(since),
      waitForShared(pageC, 'alpha', 10_000).then(
        () => [undefined, since()] as const,
        (err: Error) => [err.message, undefined] as const,
      ),
    ])
    console.log(
      `demo: after opening the second page: data channel open both ways in ${channelMs} ms, ` +
        `shared text there in ${textMs ?? 'never'} ms`,
    )
    // Chat both ways over the data channel.
    await pageA.locator('#chat-input').fill('hello from node A')
    await pageA.locator('#chat-form button').click()
    await pageC.locator('.msg.theirs .text', { hasText: 'hello from node A' }).waitFor({ timeout: 5_000 })
    await pageC.locator('#chat-input').fill('hi from node C')
    await pageC.locator('#chat-input').press('Enter')
    await pageA.locator('.msg.theirs .text', { hasText: 'hi from node C' }).waitFor({ timeout: 5_000 })
    // The peer shown is the other page's identity, made in that browser tab.
    const idA = await pageA.locator('[data-testid=my-id]').getAttribute('title')
    expect(await pageC.locator('[data-peer]').first().getAttribute('data-peer')).toBe(idA)

    // Edits from both sides converge (C types once its textarea is enabled, i.e. synced with node C).
    await pageC.locator('#shared:not([disabled])').waitFor({ timeout: 5_000 })
    await pageC.locator('#shared').press('End')
    await pageC.locator('#shared').pressSequentially(' beta')
    // Checked at the end, so that the steps after it still run (and show their own failures) when it fails.
    const textError = await waitForShared(
      pageA,
      firstTextError === undefined ? 'alpha beta' : ' beta',
      5_000,
    ).then(
      () => undefined,
      (err: Error) => err.message,
    )
    await screenshot(pageA, 'demo-node-a')
    await screenshot(pageC, 'demo-node-c')

    // Peer gone: closing C's tab is reported on A.
    await pageC.close({ runBeforeUnload: true })
    await pageA
      .locator('.chat .sys', { hasText: /left|gone/ })
      .last()
      .waitFor({ timeout: 15_000 })
    console.log('demo: chat on A after C left:', JSON.stringify(await pageA.locator('#chat').innerText()))
    await screenshot(pageA, 'demo-peer-gone')

    // Node down: A's page says so for signaling and for the document, and keeps retrying.
    await a.stop()
    await pageA.locator('#banner:not([hidden])', { hasText: /node/i }).waitFor({ timeout: 10_000 })
    await pageA.locator('#doc-status[data-status=disconnected]').waitFor({ timeout: 10_000 })
    await screenshot(pageA, 'demo-node-down')
    await pageA.close()
    expect(errors.filter((e) => !e.includes('WebSocket connection to'))).toEqual([])
    expect.soft(firstTextError, 'A -> C through the nodes').toBeUndefined()
    expect.soft(textError, 'C -> A through the nodes').toBeUndefined()
    expect(channelMs).toBeLessThanOrEqual(DEMO_BAR_MS)
    if (textMs !== undefined) expect(textMs).toBeLessThanOrEqual(DEMO_BAR_MS)
  })
})
