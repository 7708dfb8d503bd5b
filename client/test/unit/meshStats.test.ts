import { test } from "node:test";
import assert from "node:assert/strict";
import { readVideoStats, type StatsEntry } from "../../src/rtc/meshStats";

/** Shaped like one Chromium peer connection's getStats() while sending. */
const chromium: StatsEntry[] = [
  { id: "SV1", type: "media-source", kind: "video", framesPerSecond: 30 },
  { id: "SA2", type: "media-source", kind: "audio" },
  { id: "OT01V111", type: "outbound-rtp", kind: "video", framesPerSecond: 24, qualityLimitationReason: "cpu", active: true },
  { id: "OT01A222", type: "outbound-rtp", kind: "audio", active: true },
  { id: "IT01V333", type: "inbound-rtp", kind: "video", framesPerSecond: 30 },
  { id: "CP1", type: "candidate-pair" },
];

test("reads our outbound video and the camera's capture rate; audio and inbound are ignored", () => {
  assert.deepEqual(readVideoStats(chromium), {
    outbound: [{ id: "OT01V111", fps: 24, limitation: "cpu" }],
    sourceFps: 30,
  });
});

test("an inactive sender and a missing rate: left out, and null", () => {
  const r = readVideoStats([
    { id: "A", type: "outbound-rtp", kind: "video", active: false, framesPerSecond: 1 },
    { id: "B", type: "outbound-rtp", mediaType: "video" },
  ]);
  assert.deepEqual(r, { outbound: [{ id: "B", fps: null, limitation: "none" }], sourceFps: null });
});

test("limitations other than cpu and bandwidth are 'other'; nonsense rates are not rates", () => {
  const r = readVideoStats([
    { id: "A", type: "outbound-rtp", kind: "video", qualityLimitationReason: "other", framesPerSecond: Number.NaN },
    { id: "B", type: "outbound-rtp", kind: "video", qualityLimitationReason: "bandwidth", framesPerSecond: -1 },
  ]);
  assert.deepEqual(
    r.outbound.map((o) => [o.limitation, o.fps]),
    [
      ["other", null],
      ["bandwidth", null],
    ],
  );
});
