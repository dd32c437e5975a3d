import { Type, type TSchema } from '@sinclair/typebox';
import { DEFAULT_CRIME_PARAMS, type CrimeParams } from './rules.js';

/** HTTP schemas shared by the crime routes. */

/** The service's ids of batches, crimes, runs and matches (bigserial) */
export const ServiceId = Type.String({ pattern: '^[0-9]{1,18}$', description: "the service's id" });
export const SubjectRef = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', description: "the subject's id" });

const ProblemBody = Type.Object(
  { type: Type.String(), title: Type.String(), status: Type.Integer(), detail: Type.Optional(Type.String()), instance: Type.Optional(Type.String()) },
  { additionalProperties: true, description: 'RFC 9457 problem details' },
);

/** 4xx answers of a route, each a problem document. */
export function problems(...codes: number[]): Record<number, TSchema> {
  return Object.fromEntries(codes.map((c) => [c, ProblemBody]));
}

/** A parameter override: any of R (m), V (m/s), G (s), the others from the defaults. */
export const ParamsOverride = Type.Object(
  {
    radius_m: Type.Optional(Type.Number({ minimum: 1, maximum: 5000, description: 'm: radius R around the crime' })),
    speed_mps: Type.Optional(Type.Number({ minimum: 0.1, maximum: 100, description: 'm/s: speed V' })),
    max_gap_s: Type.Optional(Type.Integer({ minimum: 60, maximum: 86_400, description: 's: longest gap G' })),
  },
  { additionalProperties: false },
);

export function paramsWith(o: { radius_m?: number; speed_mps?: number; max_gap_s?: number } | undefined): CrimeParams {
  return { ...DEFAULT_CRIME_PARAMS, ...(o ?? {}) };
}

/** One row's fields as JSON (contract §8): the CSV columns by name. */
const Field = Type.Union([Type.String({ maxLength: 2000 }), Type.Number()]);
export const CrimeFieldsSchema = Type.Object(
  {
    force: Type.Optional(Field),
    crime_type: Type.Optional(Field),
    batch_id: Type.Optional(Field),
    crime_ref: Type.Optional(Field),
    from: Type.Optional(Field),
    to: Type.Optional(Field),
    easting: Type.Optional(Field),
    northing: Type.Optional(Field),
    lat: Type.Optional(Field),
    lon: Type.Optional(Field),
    datum: Type.Optional(Field),
    free_text: Type.Optional(Field),
  },
  { additionalProperties: false },
);
export const JsonBatch = Type.Object({ rows: Type.Array(CrimeFieldsSchema, { minItems: 1, maxItems: 100_000 }) }, { additionalProperties: false });
