/**
 * Where funmatch keeps what it can rebuild (split indexes, compiled native kernels): `$FUNMATCH_CACHE/<sub>`,
 * else `$XDG_CACHE_HOME/funmatch/<sub>`, else `~/.cache/funmatch/<sub>`; null when none of these is set.
 */
export function cacheDir(sub: string): string | null {
  const env = Deno.env.get("FUNMATCH_CACHE");
  if (env) return `${env}/${sub}`;
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/funmatch/${sub}`;
  const home = Deno.env.get("HOME");
  if (home) return `${home}/.cache/funmatch/${sub}`;
  return null;
}
