import Link from "next/link";

export function Brand({ compact = false }: { compact?: boolean }) {
  return (
    <Link href="/" className="brand" aria-label="Switchboard home">
      {/* eslint-disable-next-line @next/next/no-img-element */}
      <img src="/icon.svg" alt="" width={compact ? 28 : 36} height={compact ? 28 : 36} />
      <span className="brand-name">Switchboard</span>
    </Link>
  );
}
