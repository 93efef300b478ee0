/** Origins compared after normalisation (wire-v1 §0): `https://B.example/` equals `https://b.example`. */
export function normalizeOrigin(x: string): string | undefined {
  try {
    const u = new URL(x);
    if (u.protocol !== "https:" && u.protocol !== "http:") return undefined;
    if ((u.pathname !== "/" && u.pathname !== "") || u.search || u.hash || u.username || u.password) return undefined;
    return u.origin;
  } catch {
    return undefined;
  }
}
