/** Debian's Chromium driven by playwright-core, one context per participant. */
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

const ARGS = [
  "--headless=new",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  "--allow-loopback-in-peer-connection",
];

export function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
}

export interface Participant {
  name: string;
  context: BrowserContext;
  page: Page;
  /** Browser console lines, kept for failure reports. */
  console: string[];
}

export async function participant(browser: Browser, name: string): Promise<Participant> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const lines: string[] = [];
  page.on("console", (m) => lines.push(`[${name}] ${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => lines.push(`[${name}] pageerror: ${e.message}`));
  return { name, context, page, console: lines };
}

/** Joins `roomUrl` through the pre-join screen as `name`. */
export async function joinViaLink(p: Participant, roomUrl: string, timeout = 30_000): Promise<void> {
  await p.page.goto(roomUrl);
  const name = p.page.getByLabel("Your name");
  await name.fill(p.name);
  await p.page.getByRole("button", { name: "Join now" }).click();
  await p.page.locator('[data-testid="call"][data-status="joined"]').waitFor({ timeout });
}

/** Waits until the page shows `n` remote tiles, all with ICE connected. */
export async function waitForRemotes(p: Participant, n: number, timeout = 45_000): Promise<void> {
  await p.page.waitForFunction(
    (count) => {
      const tiles = document.querySelectorAll('[data-testid="tile"][data-local="false"]');
      return tiles.length === count && [...tiles].every((t) => t.getAttribute("data-connection") === "connected");
    },
    n,
    { timeout, polling: 250 },
  );
}

/** Waits until video from every remote peer has decoded frames (getStats). */
export async function waitForDecodedVideo(p: Participant, peers: number, minFrames = 1, timeout = 45_000): Promise<Record<string, number>> {
  const handle = await p.page.waitForFunction(
    async ({ peers, minFrames }) => {
      const sb = window.switchboard;
      if (!sb) return false;
      const stats = await sb.inboundVideo();
      const entries = Object.entries(stats);
      if (entries.length !== peers || !entries.every(([, s]) => s.framesDecoded >= minFrames)) return false;
      return Object.fromEntries(entries.map(([id, s]) => [id, s.framesDecoded]));
    },
    { peers, minFrames },
    { timeout, polling: 500 },
  );
  return (await handle.jsonValue()) as Record<string, number>;
}

export function dumpOnFailure(ps: Participant[], serverLogs: string[]): string {
  return [
    "---- browser console ----",
    ...ps.flatMap((p) => p.console.slice(-40)),
    "---- server log ----",
    ...serverLogs.slice(-60),
  ].join("\n");
}
