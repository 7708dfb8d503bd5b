"use client";
/** Sign-in (dev mode: a display name) and the lobby: start or join a room. */
import { useRouter } from "next/navigation";
import { useId, useState, type FormEvent } from "react";
import { Brand } from "./Brand";
import { MAX_NAME_CHARS, cleanName, cleanRoom, randomRoomName, saveName } from "./identity";
import { useStoredName } from "./useStoredName";

export function Home() {
  const router = useRouter();
  const name = useStoredName();
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState("");
  const [roomDraft, setRoomDraft] = useState("");
  const [roomError, setRoomError] = useState("");
  const nameId = useId();
  const roomId = useId();

  const go = (room: string) => router.push(`/room/?r=${encodeURIComponent(room)}`);

  const signIn = (e: FormEvent) => {
    e.preventDefault();
    const clean = cleanName(draft);
    if (!clean) return;
    saveName(clean);
    setEditing(false);
  };

  const join = (e: FormEvent) => {
    e.preventDefault();
    const room = cleanRoom(roomDraft);
    if (!room) {
      setRoomError("Enter a room name (letters, numbers and dashes) or paste a link.");
      return;
    }
    go(room);
  };

  return (
    <main className="home">
      <header className="home-header">
        <Brand />
      </header>
      <section className="home-hero">
        <h1>Video calls that just connect.</h1>
        <p className="lede">
          Peer-to-peer video, screen sharing and chat for small teams. Share a link, and you&apos;re in.
        </p>
      </section>

      {name === null ? null : editing || !name ? (
        <form className="card" onSubmit={signIn} aria-labelledby={`${nameId}-title`}>
          <h2 id={`${nameId}-title`}>Sign in</h2>
          <p className="muted">Development mode: pick the name others will see.</p>
          <label htmlFor={nameId}>Your name</label>
          <input
            id={nameId}
            name="name"
            autoComplete="name"
            maxLength={MAX_NAME_CHARS}
            value={draft}
            onChange={(e) => setDraft(e.target.value)}
            required
            autoFocus
          />
          <button type="submit" className="btn btn-primary" disabled={!cleanName(draft)}>
            Continue
          </button>
        </form>
      ) : (
        <div className="lobby">
          <p className="signed-in">
            Signed in as <strong>{name}</strong>{" "}
            <button
              type="button"
              className="btn-link"
              onClick={() => {
                setDraft(name);
                setEditing(true);
              }}
            >
              Change name
            </button>
          </p>
          <div className="lobby-grid">
            <section className="card" aria-labelledby="new-room-title">
              <h2 id="new-room-title">Start a meeting</h2>
              <p className="muted">Creates a room with a fresh name you can share.</p>
              <button type="button" className="btn btn-primary" onClick={() => go(randomRoomName())}>
                New room
              </button>
            </section>
            <form className="card" onSubmit={join} aria-labelledby="join-room-title" noValidate>
              <h2 id="join-room-title">Join a meeting</h2>
              <label htmlFor={roomId}>Room name or link</label>
              <input
                id={roomId}
                name="room"
                value={roomDraft}
                placeholder="e.g. swift-otter-123"
                onChange={(e) => {
                  setRoomDraft(e.target.value);
                  setRoomError("");
                }}
                aria-invalid={roomError ? true : undefined}
                aria-describedby={roomError ? `${roomId}-err` : undefined}
              />
              {roomError && (
                <p id={`${roomId}-err`} className="field-error" role="alert">
                  {roomError}
                </p>
              )}
              <button type="submit" className="btn">
                Join
              </button>
            </form>
          </div>
        </div>
      )}
    </main>
  );
}
