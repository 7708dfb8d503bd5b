// Type-checked in the scratch project against the package's declarations
// (NodeNext and bundler resolution, skipLibCheck off): the public API a
// TypeScript consumer writes against.
import {
  FrameTooLargeError,
  OutboxFullError,
  SignalingClient,
  participantMayPublish,
  type ConnectionState,
  type SignalRefused,
  type SignalKindInit,
  type StoredSession,
} from "@switchboard/signaling";
import { ErrorCode, LeaveReason, SessionDescription_Type, type Data, type Moved, type Participant } from "@switchboard/signaling/proto";

export function start(url: string, token: string, refresh: () => Promise<string>, restore?: StoredSession): SignalingClient {
  const client = new SignalingClient({ url, token, refreshToken: refresh, restore });
  client.on("participantJoined", (p: Participant) => console.log(p.id, p.name));
  client.on("state", ({ state }: { state: ConnectionState }) => console.log(state));
  client.on("stopped", ({ reason }) => console.log(reason));
  client.on("serverError", (e) => console.log(e.code === ErrorCode.rate_limited));
  client.on("selfUpdated", ({ self, previous }: { self: Participant; previous: Participant | undefined }) =>
    console.log(self.name, participantMayPublish(self), participantMayPublish(previous), client.mayPublish),
  );
  client.on("roomUpdated", ({ metadata }) => console.log(metadata.length, client.roomMetadata));
  client.on("signalRefused", ({ to, type, error }: SignalRefused) => console.log(to, type === "offer", error.code === ErrorCode.permission_denied));
  client.on("moved", ({ moved, from }: { moved: Moved; from: string }) =>
    console.log(from, moved.room, moved.participants.map((p: Participant) => p.polite), moved.maxParticipants, client.room, client.maxParticipants),
  );
  client.on("data", ({ topic, payload }: Data) => console.log(topic, payload.length));
  client.on("participantLeft", ({ reason }) => console.log(reason === LeaveReason.moved));
  const saved: StoredSession | null = client.storedSession();
  console.log(saved?.self, saved?.roomMetadata, saved?.room, saved?.maxParticipants);
  const offer: SignalKindInit = { case: "description", value: { type: SessionDescription_Type.OFFER, sdp: "" } };
  try {
    client.sendSignal("bob", offer);
  } catch (err) {
    if (!(err instanceof FrameTooLargeError || err instanceof OutboxFullError)) throw err;
  }
  client.connect();
  return client;
}
