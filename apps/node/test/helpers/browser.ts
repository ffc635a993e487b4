/**
 * Launches Debian's Chromium through playwright-core for the browser tests. When Chromium is missing the tests
 * are skipped locally but fail under CI=true (CI installs it: `apt-get install -y chromium`).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type BrowserContext, type Page } from 'playwright-core'

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
export const HAVE_CHROMIUM = existsSync(CHROMIUM_PATH)
/** Screenshots of every page under test land here (gitignored via `.artifacts`). */
export const ARTIFACTS_DIR = fileURLToPath(new URL('../../.artifacts/', import.meta.url))

if (!HAVE_CHROMIUM && process.env.CI === 'true') {
  throw new Error(
    `Chromium not found at ${CHROMIUM_PATH}: the browser tests must run in CI (apt-get install -y chromium)`,
  )
}

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
  // WebRTC between two pages of one headless browser: expose real host candidates (no mDNS names, which
  // nothing resolves here) and allow loopback so the test works on a machine whose only interface is `lo`.
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--allow-loopback-in-peer-connection',
]

export interface BrowserHandle {
  context: BrowserContext
  close(): Promise<void>
}

/** Chromium with a fresh profile directory, removed on close; `args` adds command-line flags. */
export async function launchBrowser(args: string[] = []): Promise<BrowserHandle> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'x-chromium-'))
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [...FLAGS, ...args],
    timeout: 30_000,
    viewport: { width: 1100, height: 900 },
  })
  return {
    context,
    async close() {
      await context.close().catch(() => undefined)
      rmSync(userDataDir, { recursive: true, force: true })
    },
  }
}

/** Saves a full-page screenshot to `.artifacts/<name>.png` and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS_DIR, { recursive: true })
  const path = join(ARTIFACTS_DIR, `${name}.png`)
  await page.screenshot({ path, fullPage: true })
  return path
}

/** Collects console errors and page errors so a test can print them when it fails. */
export function collectErrors(page: Page, into: string[]): void {
  page.on('pageerror', (err) => into.push(`pageerror: ${err.message}`))
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') into.push(`console.${msg.type()}: ${msg.text()}`)
  })
}
