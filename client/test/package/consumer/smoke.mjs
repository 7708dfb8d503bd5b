// Runs in a scratch project where `@switchboard/signaling` was installed
// from its packed tarball next to `@bufbuild/protobuf` and nothing else
// (see ../signalingPackage.test.ts). Plain JavaScript on purpose: this is
// what a consumer's bundler or Node loads. It drives one session through a
// fake socket (connect, join with a token, send an offer and a candidate,
// receive events, lose the connection and resume, leave) and prints what
// was sent and heard as JSON.
import { SignalingClient, decodeClientMessage, encodeServerMessage } from "@switchboard/signaling";
import { SessionDescription_Type } from "@switchboard/signaling/proto";

class FakeSocket {
  readyState = 0;
  sent = [];
  onopen = null;
  onmessage = null;
  onclose = null;
  onerror = null;
  send(data) {
    this.sent.push(decodeClientMessage(data));
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  receive(init) {
    this.onmessage?.({ data: encodeServerMessage(init) });
  }
  drop(code, reason) {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

const sockets = [];
const heard = [];
const client = new SignalingClient({
  url: "wss://example.invalid/ws",
  token: "token-1",
  attributes: { video: "on" },
  createSocket: () => {
    const s = new FakeSocket();
    sockets.push(s);
    return s;
  },
});
client.on("joined", ({ joined, rejoin }) => heard.push(`joined ${joined.sessionId} rejoin=${rejoin}`));
client.on("participantJoined", (p) => heard.push(`participantJoined ${p.id}`));
client.on("signal", (s) => heard.push(`signal ${s.from} ${s.kind.case}`));
client.on("resumed", ({ resumed }) => heard.push(`resumed ${resumed.sessionId} complete=${resumed.complete}`));
client.on("stopped", ({ code }) => heard.push(`stopped ${code}`));

client.connect();
const first = sockets[0];
first.open();
const join = first.sent[0];
first.receive({
  seq: 1n,
  message: {
    case: "joined",
    value: { requestId: join.id, sessionId: "session-1", resumeToken: "resume-1", room: "demo", self: { id: "alice" } },
  },
});
client.sendSignal("bob", { case: "description", value: { type: SessionDescription_Type.OFFER, sdp: "v=0\r\n" } });
client.sendSignal("bob", { case: "candidate", value: { candidate: "candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host", sdpMid: "0" } });
// The server accepted both (exactly once): nothing to send again on resume.
first.receive({ message: { case: "accepted", value: { seq: 2n } } });
first.receive({ seq: 2n, message: { case: "participantJoined", value: { participant: { id: "bob", name: "Bob" } } } });
first.receive({
  seq: 3n,
  message: { case: "signal", value: { from: "bob", to: "alice", kind: { case: "description", value: { type: SessionDescription_Type.ANSWER, sdp: "v=0\r\n" } } } },
});

// The network drops; skip the backoff and resume on a new socket.
first.drop(1006, "");
client.retryNow();
const second = sockets[1];
second.open();
const resume = second.sent[0];
second.receive({
  message: { case: "resumed", value: { requestId: resume.id, sessionId: "session-1", resumeToken: "resume-2", complete: true } },
});

client.leave();
second.drop(1000, "left");

const frames = [...first.sent, ...second.sent].map((m) => ({
  case: m.message.case,
  seq: m.seq.toString(),
  token: m.message.value?.token,
  to: m.message.value?.to,
  kind: m.message.value?.kind?.case,
  sessionId: m.message.value?.sessionId,
  lastSeq: m.message.value?.lastSeq?.toString(),
}));
console.log(JSON.stringify({ frames, heard, state: client.state }));
// The leave's fallback close timer would keep the process up for a second.
process.exit(0);
