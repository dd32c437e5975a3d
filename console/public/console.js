// The console's one script: GOV.UK Frontend's components (everything works without it).
import { initAll } from '/console/assets/govuk-frontend.min.js';
initAll();
