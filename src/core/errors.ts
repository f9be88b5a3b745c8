// The two kinds of failure an operator is told about, and how the command
// line ends on each. Every module's own error class extends one of them, so
// that the command line converts them in one place.

/** A failure at run time (a port in use, a refused file): exit 1 with this one line. */
export class OperatorError extends Error {}

/** Bad flags: exit 2 with this line and the command's usage. */
export class UsageError extends Error {}

/** The first line of an error's message, for a one-line report. */
export function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}

/**
 * What a failed system call means, in a few words, for a one-line error: the
 * one table of errno texts, which callers refine where they know more (the
 * directory that is missing, the likely cause of a port in use).
 */
export function errnoText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e.code) {
    case 'ENOENT': return 'does not exist';
    case 'EACCES': case 'EPERM': return 'permission denied';
    case 'EROFS': return 'read-only file system';
    case 'EISDIR': return 'is a directory';
    case 'ENOSPC': case 'EDQUOT': return 'no space left on the device';
    case 'ENOTDIR': return 'a part of the path is not a directory';
    case 'EADDRINUSE': return 'address already in use';
    case 'EADDRNOTAVAIL': return 'address not available on this host';
    default: return e.code ? `${e.code}: ${errorText(e)}` : errorText(e);
  }
}
