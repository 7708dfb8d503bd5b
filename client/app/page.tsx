import { Home } from "@/ui/Home";

export default function Page() {
  return <Home />;
}
