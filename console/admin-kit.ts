import type { FastifyReply, FastifyRequest } from 'fastify';
import type { TSchema } from '@sinclair/typebox';
import { DateTime } from 'luxon';

/** Shared by the admin pages (console/admin*.routes.ts): the CSRF hook, page context, form validation. */

export type Form = Record<string, unknown>;
export interface FieldError {
  text: string;
  href: string;
}

/** A page's context; `fieldErrors` maps a field's element id to its message (for the GOV.UK macros' errorMessage). */
export const page = (request: FastifyRequest, data: Record<string, unknown>) => {
  const all = [data.errors, data.fitErrors].flatMap((e) => (Array.isArray(e) ? (e as FieldError[]) : []));
  const fieldErrors = Object.fromEntries(all.map((e) => [e.href.slice(1), { text: e.text }]));
  return { ...data, fieldErrors, user: request.user, csrf: request.consoleSession?.csrf ?? '' };
};

export const text = (form: Form | undefined, name: string): string => (typeof form?.[name] === 'string' ? (form[name] as string).trim() : '');

/** A form or query field as the API would receive it: absent when empty. */
export const optional = (form: Form | undefined, name: string): string | undefined => text(form, name) || undefined;

/**
 * Checks `data` against the API route's own TypeBox schema with the service's validator (the
 * same Ajv set-up, formats and all, that answers the API's 400s), and turns what is wrong into
 * error-summary entries: `messages` gives a sentence per field, else the validator's words.
 */
/** One field's schema inside an object of its own (a schema root may carry no `default`); one per field schema, so the compiled check is cached. */
const wrappers = new WeakMap<TSchema, Map<string, TSchema>>();
function alone(field: string, schema: TSchema): TSchema {
  let byField = wrappers.get(schema);
  if (!byField) wrappers.set(schema, (byField = new Map()));
  let w = byField.get(field);
  if (!w) byField.set(field, (w = { type: 'object', properties: { [field]: schema } } as unknown as TSchema));
  return w;
}

export function validate(request: FastifyRequest, schema: TSchema, data: Record<string, unknown>, messages: Record<string, string>): FieldError[] {
  // field by field, so that the summary lists every field in error (the API stops at the first)
  const properties = (schema as { properties?: Record<string, TSchema> }).properties ?? {};
  const required = new Set((schema as { required?: string[] }).required ?? []);
  const errors: FieldError[] = [];
  for (const [field, fieldSchema] of Object.entries(properties)) {
    const value = data[field];
    let ok: boolean;
    let why = 'is required';
    if (value === undefined) ok = !required.has(field);
    else {
      const check = request.compileValidationSchema(alone(field, fieldSchema) as never);
      ok = check({ [field]: value }) as boolean;
      why = check.errors?.[0]?.message ?? 'is not valid';
    }
    if (!ok) errors.push({ text: messages[field] ?? `${field.replace(/_/g, ' ')} ${why}`, href: `#${field.replace(/_/g, '-')}` });
  }
  if (errors.length === 0 && !request.compileValidationSchema(schema as never)(data)) errors.push({ text: 'The form is not valid: check each field', href: '#main-content' });
  return errors;
}

/** A `datetime-local` value (`YYYY-MM-DDTHH:mm`) in a time zone as RFC 3339 UTC, or the text unchanged when it is not one (the schema then refuses it). */
export function localToIso(value: string, zone: string): string {
  const d = DateTime.fromISO(value, { zone });
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(value) && d.isValid ? d.toUTC().toISO()! : value;
}

/** Now, as a `datetime-local` value in a time zone (a form's default). */
export const localNow = (zone: string): string => DateTime.now().setZone(zone).toFormat("yyyy-MM-dd'T'HH:mm");

/** A 403 page for a change the role may not make here (the route's roles already refuse; this is the handler's own check). */
export const refuse = (request: FastifyRequest, reply: FastifyReply, message: string) => reply.code(403).view('error.njk', page(request, { title: 'You cannot do this', message }));
