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

/** What a failed system call on `path` means, in a few words, for a one-line error. */
export function errnoText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e.code) {
    case 'ENOENT': return 'does not exist';
    case 'EACCES': case 'EPERM': return 'permission denied';
    case 'EROFS': return 'read-only file system';
    case 'EISDIR': return 'is a directory';
    case 'ENOSPC': return 'no space left on device';
    case 'ENOTDIR': return 'a part of the path is not a directory';
    default: return e.code ? `${e.code}: ${errorText(e)}` : errorText(e);
  }
}
