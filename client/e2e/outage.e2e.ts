/**
 * Signaling outages never interrupt media: a three-way call while
 * `switchboard all` is killed (SIGKILL: no drain, no close frames) and
 * started again on the same port. The new process has none of the sessions
 * and, in dev mode, a new signing key, so every resume is refused
 * ("unauthenticated: unknown signing key"). Each client gets a fresh token
 * from the dev endpoint, joins again, and keeps its RTCPeerConnections:
 * video decodes throughout, no connection is closed, and signaling and chat
 * work afterwards.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import type { Browser } from "playwright-core";
import { RESULTS_DIR, startStack, type Stack } from "./support/stack";
import {
  inboundVideo,
  joinViaLink,
  launch,
  participant,
  screenshots,
  startVideoWatch,
  until,
  videoWatch,
  waitForDecodedVideo,
  waitForRemotes,
  type Participant,
  stepper,
} from "./support/browser";

/** The longest a remote video may go without a new decoded frame. */
const MAX_FRAME_GAP_MS = 1000;

let stack: Stack;
let browser: Browser;
const people: Participant[] = [];
const serverLogs: string[] = [];

before(async () => {
  mkdirSync(RESULTS_DIR, { recursive: true });
  stack = await startStack();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

const step = stepper(people, () => [...serverLogs, ...stack.logs], {
  dir: RESULTS_DIR,
  tag: "outage-failure",
});

function statsOf(p: Participant) {
  return p.page.evaluate(() => window.switchboard?.stats());
}

test("a server restart: fresh tokens, same peer connections, video never stops", { timeout: 240_000 }, async () => {
  const ps = await Promise.all(["Alice", "Bob", "Carol"].map((n) => participant(browser, n)));
  people.push(...ps);
  const [alice, bob, carol] = ps as [Participant, Participant, Participant];
  const room = `${stack.edge}/room/?r=outage-${Date.now().toString(36)}`;

  await step("three join and exchange video", async () => {
    for (const p of ps) await joinViaLink(p, room);
    await Promise.all(ps.map((p) => waitForRemotes(p, 2)));
    await Promise.all(ps.map((p) => waitForDecodedVideo(p, 2, 10)));
  });
  const before = await Promise.all(ps.map(statsOf));
  for (const p of ps) await startVideoWatch(p);

  const edgeAddr = new URL(stack.edge).host;
  serverLogs.push(...stack.logs, "---- killed ----");
  await stack.kill();

  await step("every page notices the lost server", async () => {
    await Promise.all(ps.map((p) => p.page.locator('[data-testid="call"][data-status="reconnecting"]').waitFor({ timeout: 30_000 })));
  });

  stack = await startStack({ edgeListen: edgeAddr });

  await step("every page is joined again, in a new session", async () => {
    await Promise.all(
      ps.map((p) =>
        until(`${p.name} joined again`, async () => {
          const st = await statsOf(p);
          const shown = await p.page.locator('[data-testid="call"][data-status="joined"]').count();
          return st && st.signaling.joins === 2 && shown === 1 ? true : undefined;
        }),
      ),
    );
  });

  await step("video keeps decoding after the restart", async () => {
    for (const p of ps) {
      const base = await inboundVideo(p);
      await until(`${p.name} decoding 30 more frames from each peer`, async () => {
        const now = await inboundVideo(p);
        const ids = Object.keys(base);
        return ids.length === 2 && ids.every((id) => (now[id]?.framesDecoded ?? 0) > (base[id]?.framesDecoded ?? 0) + 30) ? true : undefined;
      });
    }
  });

  await step("no gap in decoded video and no peer connection closed", async () => {
    for (const [i, p] of ps.entries()) {
      const watch = await videoWatch(p);
      const peers = Object.entries(watch.peers);
      assert.equal(peers.length, 2, `${p.name} watched two remote videos`);
      for (const [id, w] of peers) {
        assert.ok(w.samples > 10, `${p.name}: enough samples of ${id}`);
        assert.ok(
          w.maxGapMs <= MAX_FRAME_GAP_MS,
          `${p.name}: video from ${id} stalled for ${Math.round(w.maxGapMs)} ms (over ${watch.elapsedMs.toFixed(0)} ms watched)`,
        );
      }
      const after = await statsOf(p);
      assert.ok(after && before[i]);
      assert.equal(after.mesh.closed, 0, `${p.name} closed no RTCPeerConnection`);
      for (const [id, n] of Object.entries(before[i].negotiation)) {
        assert.equal(after.negotiation[id]?.generation, n.generation, `${p.name} kept its connection to ${id}`);
      }
      assert.equal(after.signaling.joins, 2, `${p.name} joined a second time`);
    }
  });

  await step("signaling works in the new sessions (presence from bob reaches alice and carol)", async () => {
    const bobId = (await bob.page.evaluate(() => window.switchboard?.call.snapshot.selfId)) ?? "";
    await bob.page.getByRole("button", { name: "Mute", exact: true }).click();
    for (const p of [alice, carol]) {
      await p.page.locator(`[data-testid="tile"][data-peer-id="${bobId}"][data-audio="off"]`).waitFor({ timeout: 15_000 });
    }
  });

  await step("chat works after the restart", async () => {
    const text = `after the restart ${Date.now()}`;
    const input = alice.page.getByRole("textbox", { name: "Message" });
    await input.fill(text);
    await input.press("Enter");
    for (const p of [bob, carol]) {
      await p.page.locator('[data-testid="chat-message"]', { hasText: text }).waitFor({ timeout: 15_000 });
    }
  });

  await screenshots(ps, RESULTS_DIR, "outage");
  // Three decoding pages would slow the next test down on two cores.
  await Promise.all(ps.map((p) => p.context.close()));
});

test("a crashed participant shows as reconnecting at once and goes within the grace period", { timeout: 120_000 }, async () => {
  const ps = await Promise.all(["Gina", "Hank"].map((n) => participant(browser, n)));
  people.push(...ps);
  const [gina, hank] = ps as [Participant, Participant];
  const room = `${stack.edge}/room/?r=crash-${Date.now().toString(36)}`;

  await step("both join and exchange video", async () => {
    for (const p of ps) await joinViaLink(p, room);
    await Promise.all(ps.map((p) => waitForRemotes(p, 1)));
    await Promise.all(ps.map((p) => waitForDecodedVideo(p, 1, 5)));
  });
  const hankId = (await hank.page.evaluate(() => window.switchboard?.call.snapshot.selfId)) ?? "";
  assert.ok(hankId);
  const tile = gina.page.locator(`[data-testid="tile"][data-peer-id="${hankId}"]`);
  assert.equal(await tile.getAttribute("data-presence"), "connected");

  // The renderer dies: no pagehide, no Leave, no close frame.
  const cdp = await hank.context.newCDPSession(hank.page);
  const crashedAt = Date.now();
  void cdp.send("Page.crash").catch(() => undefined);

  await step("gina's tile for hank says reconnecting within two seconds", async () => {
    await gina.page.locator(`[data-testid="tile"][data-peer-id="${hankId}"][data-presence="reconnecting"]`).waitFor({ timeout: 2_000 });
    assert.match((await tile.locator(".tile-state").textContent()) ?? "", /Reconnecting/);
  });
  await gina.page.screenshot({ path: `${RESULTS_DIR}/crash-reconnecting-gina.png` });

  await step("and the tile goes within the grace period, long before the resume window", async () => {
    await tile.waitFor({ state: "detached", timeout: 25_000 });
  });
  const gone = Date.now() - crashedAt;
  assert.ok(gone < 30_000, `tile removed after ${gone} ms`);
  const st = await gina.page.evaluate(() => window.switchboard?.stats());
  assert.equal(st?.mesh.droppedLost, 1);
});
