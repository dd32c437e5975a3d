import type { FastifyInstance } from 'fastify';
import type { BrokerAdmin } from '../registry/dynsec.js';
import type { WebhookDeps } from '../alerts/webhooks.routes.js';
import type { ConsoleDeps } from './console.plugin.js';
import { adminRegistryRoutes } from './admin.routes.js';
import { subscriptionRoutes } from './admin-subscriptions.routes.js';
import { adminLogRoutes } from './admin-logs.routes.js';

export interface AdminConsoleDeps {
  /** provisions devices at the broker (null: not configured, as for the API) */
  broker: BrokerAdmin | null;
  webhooks: WebhookDeps;
  /** whether the service sends alert email (SMTP configured) */
  emailEnabled: boolean;
}

/** The admin pages and everyone's own subscriptions (issue 11 §7), registered once by the console plugin. */
export function adminRoutes(deps: ConsoleDeps) {
  return async (app: FastifyInstance): Promise<void> => {
    await app.register(adminRegistryRoutes(deps));
    await app.register(subscriptionRoutes(deps));
    await app.register(adminLogRoutes(deps));
  };
}
