import { Type } from '@sinclair/typebox';

/** RFC 3339 date-time: accepted as a string, answered from a Date (serialised as ISO 8601 UTC). */
export const DateTimeOut = Type.Unsafe<Date | string>({ type: 'string', format: 'date-time' });
export const DateTimeIn = Type.String({ format: 'date-time', description: 'RFC 3339 date-time' });
export const RefId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', description: "the caller's own reference" });
export const DeviceIdSchema = Type.String({ pattern: '^[A-Za-z0-9_-]{3,64}$', description: 'tag serial (also its MQTT client id and username)' });
