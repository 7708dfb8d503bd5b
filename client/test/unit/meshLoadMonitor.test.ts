import { test } from "node:test";
import assert from "node:assert/strict";
import { ENTER_SAMPLES, MESH_LOAD_WARMUP_MS, type MeshLoadWarning, type OutgoingVideo } from "../../src/rtc/meshLoad";
import { MeshLoadMonitor } from "../../src/rtc/meshLoadMonitor";
import type { StatsEntry } from "../../src/rtc/meshStats";

/** A peer connection whose getStats() reports our video sent at `fps` of 30. */
function fakePc(stats: { fps: number }): RTCPeerConnection {
  const report = (): Map<string, StatsEntry> =>
    new Map<string, StatsEntry>([
      ["S", { id: "S", type: "media-source", kind: "video", framesPerSecond: 30 }],
      ["O", { id: "O", type: "outbound-rtp", kind: "video", framesPerSecond: stats.fps, qualityLimitationReason: "none" }],
    ]);
  return { getStats: async () => report() } as unknown as RTCPeerConnection;
}

function setup() {
  let t = 0;
  let video: OutgoingVideo = "camera";
  const rate = { fps: 6 };
  const connections = [
    { peerId: "bob", pc: fakePc(rate) },
    { peerId: "carol", pc: fakePc(rate) },
  ];
  // A long interval: the test samples by hand with refresh().
  const monitor = new MeshLoadMonitor({ connections: () => connections, video: () => video }, { intervalMs: 3_600_000, now: () => t });
  const changes: (MeshLoadWarning | null)[] = [];
  monitor.on("change", (w) => changes.push(w));
  return {
    monitor,
    changes,
    rate,
    advance: (ms: number) => (t += ms),
    setVideo: (v: OutgoingVideo) => (video = v),
  };
}

/** Read through a call, so that an assertion on it does not narrow later reads. */
const shown = (m: MeshLoadMonitor): MeshLoadWarning | null => m.warning;

async function samples(monitor: MeshLoadMonitor, n: number): Promise<void> {
  for (let i = 0; i < n; i += 1) await monitor.refresh();
}

test("new streams warm up first; then a sustained fall warns with the call's size", async () => {
  const { monitor, changes, advance } = setup();
  monitor.start();
  await samples(monitor, ENTER_SAMPLES + 2);
  assert.deepEqual(monitor.lastSample?.streams, [], "nothing judged during warm-up");
  assert.equal(shown(monitor), null);
  advance(MESH_LOAD_WARMUP_MS);
  await samples(monitor, ENTER_SAMPLES);
  assert.equal(monitor.lastSample?.streams.length, 2);
  assert.equal(monitor.lastSample?.sourceFps, 30);
  assert.deepEqual(changes, [{ cause: "device", worstFps: 6, sourceFps: 30, limitation: "none", peers: 2, video: "camera" }]);
  monitor.stop();
});

test("camera off clears at the next sample; stop clears and stops sampling", async () => {
  const { monitor, changes, advance, setVideo } = setup();
  monitor.start();
  await monitor.refresh();
  advance(MESH_LOAD_WARMUP_MS);
  await samples(monitor, ENTER_SAMPLES);
  assert.notEqual(shown(monitor), null);
  setVideo("none");
  await monitor.refresh();
  assert.equal(shown(monitor), null);
  assert.equal(changes.at(-1), null);

  setVideo("camera");
  await samples(monitor, ENTER_SAMPLES);
  assert.notEqual(shown(monitor), null);
  monitor.stop();
  assert.equal(shown(monitor), null);
  const seen = changes.length;
  await samples(monitor, ENTER_SAMPLES);
  assert.equal(changes.length, seen, "stopped: no more samples");
});

test("dismiss hides it; simulated readings replace measured ones", async () => {
  const { monitor, rate, advance } = setup();
  monitor.start();
  rate.fps = 30;
  await monitor.refresh();
  advance(MESH_LOAD_WARMUP_MS);
  await samples(monitor, ENTER_SAMPLES);
  assert.equal(shown(monitor), null, "healthy as measured");

  monitor.simulate({ sourceFps: 30, streams: [{ fps: 5, limitation: "cpu" }] });
  await samples(monitor, ENTER_SAMPLES);
  assert.equal(shown(monitor)?.limitation, "cpu");
  assert.equal(shown(monitor)?.peers, 2, "the call's size stays live");
  monitor.dismiss();
  assert.equal(shown(monitor), null);
  monitor.stop();
});
