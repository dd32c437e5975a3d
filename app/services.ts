/**
 * The parts of the service, for callers that want them all (tests). `app/main.ts` imports only
 * the parts a process runs, so an ingest process does not load the HTTP API or the rule engines.
 */
export * from '../platform/runtime.js';
export { startIngest } from './ingest.part.js';
export { startWorker, MAINTENANCE_QUEUE, EVALUATION_CONCURRENCY } from './worker.part.js';
export { startApi } from './api.part.js';
