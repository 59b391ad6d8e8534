import { FormatError, LegacyFault } from './errors.js';
import { buildXml, namespaceAttributes, parseXml, type XmlOptions } from './xml.js';

/**
 * SOAP 1.1 and 1.2 envelopes around the XML format. Writing wraps the mapped body in an
 * envelope that declares the configured namespaces; reading checks the envelope, turns a
 * `Fault` into a LegacyFault (whatever the HTTP status: many legacy servers answer faults with
 * 200, others with 500) and returns the content of `Body`.
 */

export type SoapVersion = '1.1' | '1.2';

const ENVELOPE_NS: Record<SoapVersion, string> = {
  '1.1': 'http://schemas.xmlsoap.org/soap/envelope/',
  '1.2': 'http://www.w3.org/2003/05/soap-envelope',
};

/** The Content-Type and action headers of a SOAP request. */
export function soapHeaders(
  version: SoapVersion,
  action: string | undefined,
  charset: string,
): Record<string, string> {
  if (version === '1.1') {
    return { 'content-type': `text/xml; charset=${charset}`, soapaction: `"${action ?? ''}"` };
  }
  const act = action === undefined ? '' : `; action="${action}"`;
  return { 'content-type': `application/soap+xml; charset=${charset}${act}` };
}

/** The envelope text around a body tree. */
export function buildEnvelope(
  version: SoapVersion,
  body: unknown,
  options: XmlOptions,
  charset: string,
  header?: unknown,
): string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new FormatError('the SOAP body must be an object whose keys are element names');
  }
  const envelope: Record<string, unknown> = {
    '@xmlns:soap': ENVELOPE_NS[version],
    ...namespaceAttributes(options.namespaces),
    ...(header === undefined ? {} : { 'soap:Header': header }),
    'soap:Body': body,
  };
  return `<?xml version="1.0" encoding="${charset}"?>${buildXml({ 'soap:Envelope': envelope })}`;
}

const text = (v: unknown): string | undefined => {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && '#text' in v)
    return String((v as Record<string, unknown>)['#text']);
  return undefined;
};

/** Reads an envelope: the Body's content, or a LegacyFault thrown for a Fault. */
export function parseEnvelope(xml: string, options: XmlOptions): Record<string, unknown> {
  const tree = parseXml(xml, options, 'Envelope.Body.');
  const envelope = tree.Envelope;
  if (envelope === '') throw new FormatError('the SOAP envelope has no Body');
  if (typeof envelope !== 'object' || envelope === null || Array.isArray(envelope)) {
    throw new FormatError('the answer is XML but not a SOAP envelope (no Envelope element at the root)');
  }
  const body = (envelope as Record<string, unknown>).Body;
  if (body === undefined || body === '') {
    throw new FormatError('the SOAP envelope has no Body');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new FormatError('the SOAP Body is not an element tree');
  }
  const fault = (body as Record<string, unknown>).Fault;
  if (fault !== undefined) throw faultOf(fault);
  return body as Record<string, unknown>;
}

function faultOf(fault: unknown): LegacyFault {
  const f = (typeof fault === 'object' && fault !== null ? fault : {}) as Record<string, unknown>;
  // SOAP 1.1: faultcode / faultstring / detail. SOAP 1.2: Code.Value (+ Subcode) / Reason.Text / Detail.
  if ('faultcode' in f || 'faultstring' in f) {
    return new LegacyFault(text(f.faultcode) ?? 'Server', text(f.faultstring) ?? 'SOAP fault', f.detail);
  }
  const code = f.Code as Record<string, unknown> | undefined;
  const sub = (code?.Subcode as Record<string, unknown> | undefined)?.Value;
  const reason = (f.Reason as Record<string, unknown> | undefined)?.Text;
  const reasonText = Array.isArray(reason) ? text(reason[0]) : text(reason);
  return new LegacyFault(text(sub) ?? text(code?.Value) ?? 'Receiver', reasonText ?? 'SOAP fault', f.Detail);
}
