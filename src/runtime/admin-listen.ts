/** Where the admin listener listens, and its token and peers (`admin:` in a file). */
export interface AdminListen {
  host: string;
  port: number;
  token?: string | undefined;
  peers?: readonly string[] | undefined;
}

/** The admin listener: the file's, with `--admin host:port` (options) moving it; `false` turns it off. */
export function adminListen(
  override: { host: string; port: number } | false | undefined,
  fromFile: AdminListen | undefined,
): AdminListen | undefined {
  if (override === false) return undefined;
  if (override === undefined) return fromFile;
  return { ...fromFile, host: override.host, port: override.port };
}
