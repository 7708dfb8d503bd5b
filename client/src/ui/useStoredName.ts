"use client";
/**
 * The remembered display name as React state. The static export renders
 * without localStorage (server snapshot: null), the browser then reads it.
 */
import { useSyncExternalStore } from "react";
import { loadName, NAME_CHANGED_EVENT } from "./identity";

function subscribe(onChange: () => void): () => void {
  window.addEventListener("storage", onChange);
  window.addEventListener(NAME_CHANGED_EVENT, onChange);
  return () => {
    window.removeEventListener("storage", onChange);
    window.removeEventListener(NAME_CHANGED_EVENT, onChange);
  };
}

/** null while rendering statically; "" when no name is stored. */
export function useStoredName(): string | null {
  return useSyncExternalStore(subscribe, loadName, () => null);
}

const noSubscribe = () => () => undefined;

/** A value only the browser knows (e.g. from `location`); null when static. */
export function useBrowserValue<T>(read: () => T): T | null {
  return useSyncExternalStore(noSubscribe, read, () => null);
}
