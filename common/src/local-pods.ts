/**
 * Local mode's answer to `POST /api/v1/local/pods` (`nemutator run`): what the CLI needs to
 * start a program as a pod's container. Shared by local mode, which answers, and the CLI.
 */
export interface LocalPodTicket {
  uid: string;
  namespace: string;
  name: string;
  container: string;
  containerId: string;
  /** The pod's service-account token, for the launcher to present to the agent. */
  token: string;
  socketPath: string;
  cgroupRoot: string;
}
