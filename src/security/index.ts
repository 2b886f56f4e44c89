export {
  CA_NAME,
  PKI_DEFAULTS,
  PkiError,
  certPath,
  initCa,
  issue,
  keyPath,
  list,
  subjectAltNames,
  summarize,
  type CertSummary,
  type InitCaOptions,
  type IssueOptions,
  type Validity,
} from "./pki.js";
export {
  PolicyError,
  accessPolicy,
  loadPolicy,
  parsePolicy,
  type AccessPolicy,
  type ExportConfig,
  type Grant,
  type IdentityConfig,
  type Policy,
} from "./policy.js";
export {
  NATS_CONFIG_DEFAULTS,
  renderNatsConfig,
  userOf,
  userPermissions,
  type NatsConfigOptions,
  type UserPermissions,
} from "./nats-config.js";
export { TlsSetupError, explainConnectError, tlsConnectOptions, type ConnectContext, type NatsTlsOptions } from "./tls.js";
