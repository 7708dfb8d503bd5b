"use client";
/**
 * Around every page: registers the service worker (production builds) and,
 * outside a call, tells the user when the network or the server cannot be
 * reached (see reachability.ts). In a call the call screen says it, in its
 * own words and place, so that the page never shows two banners.
 */
import { useEffect, useSyncExternalStore, type ReactNode } from "react";
import { reachability } from "./reachability";

export function AppChrome({ children }: { children: ReactNode }) {
  const net = useSyncExternalStore(reachability.subscribe, reachability.getSnapshot, reachability.getServerSnapshot);

  useEffect(() => {
    if (process.env.NODE_ENV === "production" && "serviceWorker" in navigator) {
      navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch((err: unknown) => {
        console.warn("switchboard: service worker registration failed", err);
      });
    }
  }, []);

  const down = !net.online || !net.server;
  return (
    <>
      {down && !net.callShowing && (
        <div className="offline-banner" role="status" data-testid="offline-banner">
          {net.online ? (
            <>
              <strong>Switchboard is offline.</strong> Its server can&apos;t be reached right now; this page keeps
              trying.
            </>
          ) : (
            <>
              <strong>You are offline.</strong> Switchboard will be back when your network is.
            </>
          )}
        </div>
      )}
      {children}
    </>
  );
}
