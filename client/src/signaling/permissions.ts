/**
 * What a participant may do, from `Participant.permissions` (docs/protocol.md
 * §7.1): the token's grants at the join, changed live by the application's
 * backend (RoomService.UpdateParticipant; `selfUpdated` for ourselves,
 * `participantUpdated` for the others).
 */
import type { Participant } from "./gen/switchboard/v1/client_pb.ts";

/**
 * Whether the server relays this participant's SDP offers
 * (`permissions.publish`). A record without permissions (none yet, or a
 * server that predates them) may: offers were never refused before.
 * Answers and ICE candidates always pass, so a participant who may not
 * publish still connects to those who offer to it.
 */
export function participantMayPublish(p: Participant | undefined): boolean {
  return p?.permissions?.publish ?? true;
}
