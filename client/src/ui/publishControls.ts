/**
 * The publish permission in words, for the banner (callStatus.ts) and for
 * the camera and screen-share buttons, which stay in place but disabled
 * (`aria-disabled`, so they keep focus and their explanation is read out).
 */
import type { PublishView } from "../rtc/publishPermission";

export const PUBLISH_REVOKED_TEXT = "The host has turned off your camera and screen sharing.";
export const PUBLISH_DENIED_TEXT = "You're in this call as a viewer: your camera and screen sharing are off.";
export const PUBLISH_GRANTED_TEXT = "You can turn on your camera and share your screen again.";

export interface PublishControls {
  /** Camera and screen share cannot be turned on. */
  disabled: boolean;
  /** Why, for the buttons' description and tooltip; null when enabled. */
  hint: string | null;
}

export function publishControls(p: PublishView): PublishControls {
  if (p.allowed) return { disabled: false, hint: null };
  return { disabled: true, hint: p.deniedBy === "join" ? PUBLISH_DENIED_TEXT : PUBLISH_REVOKED_TEXT };
}
