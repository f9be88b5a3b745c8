// Files that must be regular files (a key file, an hb.dat, a slot file): a
// FIFO would block open(2) until a writer came, a device such as /dev/zero
// would never end, and a file of any size would be read whole. So: open
// without blocking, check what was opened (fstat, on the fd: the file checked
// is the file read), and read no more than a stated size.
import { closeSync, constants, fstatSync, lstatSync, openSync, readlinkSync, readSync, type Stats } from 'node:fs';
import { errnoText, OperatorError } from './errors.ts';

/** What a path that is not a regular file is, in words. */
export function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** Where `path` points when it is a symbolic link to nothing; undefined when it is not one. */
function danglingTarget(path: string): string | undefined {
  try {
    return lstatSync(path).isSymbolicLink() ? readlinkSync(path) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Refuses `path` when it is a symbolic link to nothing, which a reader would
 * report as missing and a writer might create through: `what` names the file
 * in the one-line OperatorError ("slot file").
 */
export function refuseDangling(path: string, what: string): void {
  const target = danglingTarget(path);
  if (target !== undefined) throw new OperatorError(`${what} ${path}: is a dangling symbolic link to ${target}`);
}

/** Why a path could not be opened, in a few words: errnoText's, and the two that only open(2) gives. */
function openReason(err: NodeJS.ErrnoException): string {
  if (err.code === 'ELOOP') return 'too many levels of symbolic links';
  // open(2) of a UNIX socket.
  if (err.code === 'ENXIO') return 'is a socket, not a regular file';
  return errnoText(err);
}

/** An Error of one line, keeping the errno code (if any) for callers that add a hint. */
function refusal(reason: string, code?: string): Error {
  return Object.assign(new Error(reason), { code });
}

/**
 * Opens `path` read-only without blocking (O_NONBLOCK: a FIFO opens at once
 * instead of waiting for a writer) and returns the fd once fstat says it is
 * a regular file of at most maxBytes. Throws an Error whose message is the
 * reason in one line ("is a FIFO, not a regular file"), without the path,
 * so that callers say what the file is for; `code` is the errno code, if any.
 */
export function openRegular(path: string, maxBytes = Infinity): number {
  let fd: number;
  try {
    // An empty path would be ENOENT, "does not exist": say what it is.
    if (path === '') throw refusal('is an empty path');
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === undefined) throw e;
    // "Does not exist" would send the operator looking in the wrong place.
    const target = e.code === 'ENOENT' ? danglingTarget(path) : undefined;
    throw target === undefined ? refusal(openReason(e), e.code) : refusal(`is a dangling symbolic link to ${target}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw refusal(`is ${fileKind(st)}, not a regular file`);
    if (st.size > maxBytes) throw refusal(`is ${st.size} bytes, larger than the ${maxBytes} bytes it may be`);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

/**
 * The whole of a regular file of at most maxBytes, read through openRegular.
 * It reads up to one byte past the limit, so that a file that grows after
 * the fstat (or a /proc file, whose size says 0) is refused, not cut short.
 */
export function readRegular(path: string, maxBytes: number): { data: Buffer; stats: Stats } {
  const fd = openRegular(path, maxBytes);
  try {
    const stats = fstatSync(fd);
    let buf = Buffer.allocUnsafe(Math.min(maxBytes + 1, stats.size + 4096));
    let got = 0;
    for (;;) {
      if (got === buf.length) {
        if (got > maxBytes) throw refusal(`is larger than the ${maxBytes} bytes it may be`);
        // Grown since the fstat: read on, up to the limit.
        const bigger = Buffer.allocUnsafe(Math.min(maxBytes + 1, buf.length * 2));
        buf.copy(bigger);
        buf = bigger;
      }
      const n = readSync(fd, buf, got, buf.length - got, null);
      if (n === 0) return { data: buf.subarray(0, got), stats };
      got += n;
    }
  } finally {
    closeSync(fd);
  }
}
