import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ENTER_SAMPLES,
  EXIT_SAMPLES,
  INITIAL_MESH_LOAD,
  MIN_PEERS,
  dismissMeshLoad,
  judgeSample,
  nextMeshLoad,
  shownMeshLoad,
  type MeshLoadSample,
  type MeshLoadState,
} from "../../src/rtc/meshLoad";

/** Four remote peers, camera at 30 fps, every copy sent at `fps`. */
function sample(fps: number, over: Partial<MeshLoadSample> = {}): MeshLoadSample {
  const peers = over.peers ?? 4;
  return {
    peers,
    video: "camera",
    sourceFps: 30,
    streams: Array.from({ length: peers }, () => ({ fps, limitation: "none" as const })),
    ...over,
  };
}
const healthy = (over: Partial<MeshLoadSample> = {}) => sample(29, over);
const strained = (over: Partial<MeshLoadSample> = {}) => sample(8, over);

function feed(samples: MeshLoadSample[], from: MeshLoadState = INITIAL_MESH_LOAD): MeshLoadState {
  return samples.reduce(nextMeshLoad, from);
}
const times = (n: number, s: MeshLoadSample) => Array.from({ length: n }, () => s);

test("a sustained frame-rate fall warns after ENTER_SAMPLES samples in a row, not before", () => {
  const almost = feed(times(ENTER_SAMPLES - 1, strained()));
  assert.equal(almost.warning, null);
  const warned = nextMeshLoad(almost, strained());
  assert.deepEqual(warned.warning, { cause: "device", worstFps: 8, sourceFps: 30, limitation: "none", peers: 4, video: "camera" });
  assert.equal(shownMeshLoad(warned), warned.warning);
});

test("one healthy sample in between starts the count again (no warning on blips)", () => {
  const s = feed([...times(ENTER_SAMPLES - 1, strained()), healthy(), ...times(ENTER_SAMPLES - 1, strained())]);
  assert.equal(s.warning, null);
});

test("a one-to-one call is never judged, however bad", () => {
  const s = feed(times(10, strained({ peers: MIN_PEERS - 1 })));
  assert.equal(s.warning, null);
  assert.deepEqual(s, INITIAL_MESH_LOAD);
});

test("the browser's cpu limitation is strain even at a full frame rate", () => {
  const cpu: MeshLoadSample = { ...healthy(), streams: [{ fps: 29, limitation: "none" }, { fps: 28, limitation: "cpu" }] };
  assert.deepEqual(judgeSample(cpu), { cause: "device", worstFps: 28, sourceFps: 30, limitation: "cpu" });
  assert.equal(feed(times(ENTER_SAMPLES, cpu)).warning?.cause, "device");
});

test("a frame-rate fall on a bandwidth-limited stream blames the connection", () => {
  const bw: MeshLoadSample = { ...healthy(), streams: [{ fps: 29, limitation: "none" }, { fps: 9, limitation: "bandwidth" }] };
  assert.deepEqual(judgeSample(bw), { cause: "connection", worstFps: 9, sourceFps: 30, limitation: "bandwidth" });
});

test("bandwidth limitation alone (lower resolution, smooth video) is not strain", () => {
  assert.equal(judgeSample({ ...healthy(), streams: [{ fps: 29, limitation: "bandwidth" }, { fps: 30, limitation: "bandwidth" }] }), null);
});

test("the frame rate counts against what is captured: a 15 fps camera sending 14 is fine, 8 is not", () => {
  assert.equal(judgeSample(sample(14, { sourceFps: 15 })), null);
  assert.notEqual(judgeSample(sample(8, { sourceFps: 15 })), null);
});

test("a slow source (a still screen share) is not judged on frame rate, only on the cpu verdict", () => {
  assert.equal(judgeSample(sample(1, { sourceFps: 3, video: "screen" })), null);
  assert.equal(judgeSample(sample(1, { sourceFps: null })), null);
  assert.notEqual(judgeSample({ ...sample(1, { sourceFps: 3 }), streams: [{ fps: 1, limitation: "cpu" }] }), null);
});

test("streams without a reported rate are left out of the worst rate", () => {
  assert.equal(judgeSample({ ...healthy(), streams: [{ fps: null, limitation: "none" }, { fps: 29, limitation: "none" }] }), null);
});

test("a sample with nothing past warm-up is no evidence: the counts stay", () => {
  const two = feed(times(ENTER_SAMPLES - 1, strained()));
  const same = nextMeshLoad(two, { ...strained(), streams: [] });
  assert.equal(same, two);
  assert.notEqual(nextMeshLoad(same, strained()).warning, null);
});

test("it clears only after EXIT_SAMPLES healthy samples in a row; a relapse restarts recovery", () => {
  const warned = feed(times(ENTER_SAMPLES, strained()));
  const almost = feed(times(EXIT_SAMPLES - 1, healthy()), warned);
  assert.notEqual(almost.warning, null, "still shown while recovering");
  const relapse = feed([strained(), ...times(EXIT_SAMPLES - 1, healthy())], almost);
  assert.notEqual(relapse.warning, null, "the relapse reset the recovery");
  assert.equal(nextMeshLoad(relapse, healthy()).warning, null);
});

test("it clears at once when the camera goes off or the call shrinks to one peer", () => {
  const warned = feed(times(ENTER_SAMPLES, strained()));
  assert.deepEqual(nextMeshLoad(warned, strained({ video: "none" })), INITIAL_MESH_LOAD);
  assert.deepEqual(nextMeshLoad(warned, strained({ peers: 1 })), INITIAL_MESH_LOAD);
});

test("while shown it follows the call's size and what we send", () => {
  const warned = feed(times(ENTER_SAMPLES, strained()));
  const bigger = nextMeshLoad(warned, strained({ peers: 6, video: "screen" }));
  assert.equal(bigger.warning?.peers, 6);
  assert.equal(bigger.warning?.video, "screen");
  const recovering = nextMeshLoad(bigger, healthy({ peers: 5 }));
  assert.equal(recovering.warning?.peers, 5);
});

test("dismissed, it stays hidden until the call grows, and a new episode shows again", () => {
  const warned = feed(times(ENTER_SAMPLES, strained()));
  const dismissed = dismissMeshLoad(warned);
  assert.equal(shownMeshLoad(dismissed), null);
  assert.equal(shownMeshLoad(nextMeshLoad(dismissed, strained())), null, "same size: still hidden");
  assert.equal(shownMeshLoad(nextMeshLoad(dismissed, strained({ peers: 3 }))), null, "smaller: still hidden");
  assert.equal(shownMeshLoad(nextMeshLoad(dismissed, strained({ peers: 5 })))?.peers, 5, "grown: shown again");

  const cleared = feed(times(EXIT_SAMPLES, healthy()), dismissed);
  assert.equal(cleared.dismissedAt, 0);
  assert.notEqual(shownMeshLoad(feed(times(ENTER_SAMPLES, strained()), cleared)), null, "a new episode shows");
  assert.equal(dismissMeshLoad(INITIAL_MESH_LOAD), INITIAL_MESH_LOAD, "nothing to dismiss");
});
