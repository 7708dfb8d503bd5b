import type { Metadata } from "next";
import { Suspense } from "react";
import { RoomScreen } from "@/ui/RoomScreen";

export const metadata: Metadata = { title: "Room" };

export default function RoomPage() {
  return (
    <Suspense
      fallback={
        <main className="center-page" aria-busy="true">
          <p className="muted">Loading room…</p>
        </main>
      }
    >
      <RoomScreen />
    </Suspense>
  );
}
