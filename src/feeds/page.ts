// The page for people at GET / and /ui of `listen --http`: one self-contained
// HTML file (page.html, bundled as text), which reads /status every second.
// Its Content-Security-Policy allows only this page's own inline style and
// script (by hash, not 'unsafe-inline') and requests to its own origin, so
// that nothing, not even a mistake in the page, can reach another host.
import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import PAGE from './page.html';

export { PAGE };

/** The hash source of each inline `<tag>` block of the page, as CSP spells it. */
function hashes(tag: string): string {
  const blocks = [...PAGE.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))];
  const sources = blocks.map((m) => `'sha256-${createHash('sha256').update(m[1]!, 'utf8').digest('base64')}'`);
  if (sources.length === 0) throw new Error(`page.html has no <${tag}> block`);
  return sources.join(' ');
}

let headers: Record<string, string | number> | undefined;

/** The response headers of the page; computed on the first request, so that other commands pay nothing. */
export function pageHeaders(): Record<string, string | number> {
  headers ??= {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': Buffer.byteLength(PAGE),
    'Cache-Control': 'no-store',
    'Content-Security-Policy': [
      "default-src 'none'",
      `script-src ${hashes('script')}`,
      `style-src ${hashes('style')}`,
      "connect-src 'self'",
      'img-src data:',
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join('; '),
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
  };
  return headers;
}

/** Answers the page (HEAD: its headers alone). */
export function servePage(res: ServerResponse, head: boolean): void {
  res.writeHead(200, pageHeaders());
  res.end(head ? undefined : PAGE);
}
