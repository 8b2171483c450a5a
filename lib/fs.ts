/** True when something (file, folder, link target) is at `path`; any stat error counts as absent. */
export function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
