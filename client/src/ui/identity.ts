/**
 * Who the user is in dev mode and how rooms are named. The display name is
 * remembered across visits; the participant id (identity) is per tab and
 * room, because a second join with the same identity replaces the first.
 */
const NAME_KEY = "switchboard.name";
/** Dispatched on window when this tab changes the stored name. */
export const NAME_CHANGED_EVENT = "switchboard:name";

export const MAX_NAME_CHARS = 40;
export const MAX_ROOM_CHARS = 64;

export function loadName(): string {
  try {
    return localStorage.getItem(NAME_KEY) ?? "";
  } catch {
    return "";
  }
}

export function saveName(name: string): void {
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch {
    /* private mode: not remembered */
  }
  window.dispatchEvent(new Event(NAME_CHANGED_EVENT));
}

/** Removes control characters and trims; empty when nothing usable is left. */
export function cleanName(raw: string): string {
  return Array.from(raw.replace(/\p{Cc}/gu, "").trim()).slice(0, MAX_NAME_CHARS).join("");
}

/** Room names are lowercase URL-safe words: `a-z`, `0-9`, `-`, `_`. */
export function cleanRoom(raw: string): string {
  let s = raw.trim();
  // Accept a pasted link as well as a bare name.
  const m = /[?&#]r=([^&#]+)/.exec(s);
  if (m?.[1]) s = decodeURIComponent(m[1]);
  return s
    .toLowerCase()
    .replace(/\s+/g, "-")
    .replace(/[^a-z0-9_-]/g, "")
    .slice(0, MAX_ROOM_CHARS);
}

const ADJECTIVES = ["amber", "brisk", "calm", "clever", "coral", "dusky", "eager", "golden", "jolly", "lucky", "mellow", "misty", "nimble", "quiet", "rapid", "silver", "sunny", "swift", "teal", "vivid"];
const NOUNS = ["badger", "comet", "falcon", "fjord", "harbor", "heron", "lagoon", "lynx", "maple", "meadow", "otter", "panda", "pine", "quartz", "raven", "river", "summit", "tiger", "willow", "zephyr"];

function pick<T>(list: readonly T[]): T {
  const v = list[Math.floor(Math.random() * list.length)];
  if (v === undefined) throw new Error("empty list");
  return v;
}

export function randomRoomName(): string {
  return `${pick(ADJECTIVES)}-${pick(NOUNS)}-${Math.floor(100 + Math.random() * 900)}`;
}

function randomSuffix(): string {
  const bytes = new Uint8Array(3);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A participant id for this tab in this room: `alice-3fa9c2`. */
export function identityFor(room: string, name: string): string {
  const key = `switchboard.identity.${room}`;
  try {
    const existing = sessionStorage.getItem(key);
    if (existing) return existing;
  } catch {
    /* fall through */
  }
  const slug =
    name
      .toLowerCase()
      .normalize("NFKD")
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 24) || "guest";
  const id = `${slug}-${randomSuffix()}`;
  try {
    sessionStorage.setItem(key, id);
  } catch {
    /* ignore */
  }
  return id;
}

export function roomLink(room: string): string {
  return `${location.origin}/room/?r=${encodeURIComponent(room)}`;
}

export function initials(name: string): string {
  // Words that start with a letter or digit: "Bob (viewer)" is "BV", not "B(".
  const parts = name
    .trim()
    .split(/\s+/)
    .map((w) => w.replace(/^[^\p{L}\p{N}]+/u, ""))
    .filter(Boolean);
  const first = parts[0]?.[0] ?? "?";
  const last = parts.length > 1 ? (parts[parts.length - 1]?.[0] ?? "") : "";
  return (first + last).toUpperCase();
}
