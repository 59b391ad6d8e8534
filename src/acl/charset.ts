import iconv from 'iconv-lite';
import { TrellisError } from '../core/errors.js';

/**
 * Legacy character sets: decode a legacy body into text and encode text for the legacy side,
 * through iconv-lite (latin1, windows-1252, the ISO-8859 and DOS code pages, Shift_JIS, ...).
 *
 * iconv-lite has no EBCDIC code page, and no well-kept npm package provides one, so IBM037 is
 * registered here as an iconv-lite single-byte codec. The table is the 256 characters of
 * Python's `cp037` codec (generated with `bytes(range(256)).decode('cp037')`), which follows the
 * Unicode consortium's mapping for IBM037.
 */

const CP037 =
  '\u0000\u0001\u0002\u0003\u009c\t\u0086\u007f\u0097\u008d\u008e\u000b\f\r\u000e\u000f\u0010\u0011\u0012\u0013\u009d\u0085\b\u0087\u0018\u0019\u0092\u008f\u001c\u001d\u001e\u001f\u0080\u0081\u0082\u0083\u0084\n\u0017\u001b\u0088\u0089\u008a\u008b\u008c\u0005\u0006\u0007\u0090\u0091\u0016\u0093\u0094\u0095\u0096\u0004\u0098\u0099\u009a\u009b\u0014\u0015\u009e\u001a \u00a0\u00e2\u00e4\u00e0\u00e1\u00e3\u00e5\u00e7\u00f1\u00a2.<(+|&\u00e9\u00ea\u00eb\u00e8\u00ed\u00ee\u00ef\u00ec\u00df!$*);\u00ac-/\u00c2\u00c4\u00c0\u00c1\u00c3\u00c5\u00c7\u00d1\u00a6,%_>?\u00f8\u00c9\u00ca\u00cb\u00c8\u00cd\u00ce\u00cf\u00cc`:#@\'="\u00d8abcdefghi\u00ab\u00bb\u00f0\u00fd\u00fe\u00b1\u00b0jklmnopqr\u00aa\u00ba\u00e6\u00b8\u00c6\u00a4\u00b5~stuvwxyz\u00a1\u00bf\u00d0\u00dd\u00de\u00ae^\u00a3\u00a5\u00b7\u00a9\u00a7\u00b6\u00bc\u00bd\u00be[]\u00af\u00a8\u00b4\u00d7{ABCDEFGHI\u00ad\u00f4\u00f6\u00f2\u00f3\u00f5}JKLMNOPQR\u00b9\u00fb\u00fc\u00f9\u00fa\u00ff\\\u00f7STUVWXYZ\u00b2\u00d4\u00d6\u00d2\u00d3\u00d50123456789\u00b3\u00db\u00dc\u00d9\u00da\u009f';

const ALIASES: Record<string, string> = {
  ibm037: 'cp037',
  'ibm-037': 'cp037',
  ebcdic: 'cp037',
  'ebcdic-cp-us': 'cp037',
};

let registered = false;

function register(): void {
  if (registered) return;
  registered = true;
  // iconv-lite loads its table of encodings on first use; after that it can take one more.
  iconv.getCodec('latin1');
  (iconv as unknown as { encodings: Record<string, unknown> }).encodings.cp037 = {
    type: '_sbcs',
    chars: CP037,
  };
}

/** The canonical name of a charset, or undefined when it is unknown. */
export function charsetName(name: string): string | undefined {
  register();
  const lower = name.trim().toLowerCase();
  const canonical = ALIASES[lower] ?? lower;
  return iconv.encodingExists(canonical) ? canonical : undefined;
}

/** Throws a clear error for a charset nobody can decode (checked at load). */
export function requireCharset(name: string): string {
  const canonical = charsetName(name);
  if (canonical === undefined) {
    throw new TrellisError(
      'TRELLIS_E_ACL_CHARSET',
      `unknown charset "${name}": use one iconv-lite knows (utf-8, latin1, windows-1252, iso-8859-15, cp850, shift_jis, ...) or cp037 for EBCDIC`,
    );
  }
  return canonical;
}

/** Decodes legacy bytes. */
export function decodeText(bytes: Buffer, charset: string): string {
  if (charset === 'utf-8' || charset === 'utf8') return bytes.toString('utf8');
  register();
  return iconv.decode(bytes, charset);
}

/** Encodes text for the legacy side. */
export function encodeText(text: string, charset: string): Buffer {
  if (charset === 'utf-8' || charset === 'utf8') return Buffer.from(text, 'utf8');
  register();
  return iconv.encode(text, charset);
}
