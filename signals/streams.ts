/** The telemetry streams of contract §1: the topic's last level and a reading's kind. */
export const STREAMS = ['gps', 'alcohol', 'status'] as const;
export type Stream = (typeof STREAMS)[number];
