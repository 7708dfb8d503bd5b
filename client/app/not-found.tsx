import Link from "next/link";

export default function NotFound() {
  return (
    <main className="center-page">
      <div className="card">
        <h1>Page not found</h1>
        <p className="muted">There is nothing at this address.</p>
        <Link className="btn btn-primary" href="/">
          Go to the lobby
        </Link>
      </div>
    </main>
  );
}
