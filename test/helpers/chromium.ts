/** Debian's Chromium for the web UI tests, driven by playwright-core: headless, reaching nothing but the agent. */
import { existsSync } from 'node:fs';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Why a UI test cannot run on this machine (no Chromium, outside CI: under CI=true it fails instead), or false. */
export const CHROMIUM_SKIP: string | false = !existsSync(CHROMIUM) && process.env.CI !== 'true' ? `${CHROMIUM} missing (bash scripts/install.sh --test)` : false;

/**
 * Chromium on the profile directory `profile` (the caller's to remove), and
 * its page. No name lookups at all, and every request but those to `base`
 * (the agent's listener) is aborted: the page needs nothing else.
 */
export async function agentBrowser(profile: string, base: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1366, height: 768 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  await context.route('**/*', (route) => (route.request().url().startsWith(base) ? route.continue() : route.abort()));
  return { context, page };
}
