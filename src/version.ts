/** Version facts; the build (build/bundle.ts) replaces the two constants below. */
declare const __PILOX_MESH_VERSION__: string | undefined;
declare const __PILOX_MESH_COMMIT__: string | undefined;

export const VERSION: string = typeof __PILOX_MESH_VERSION__ === "string" ? __PILOX_MESH_VERSION__ : "0.1.0-dev";
export const COMMIT: string = typeof __PILOX_MESH_COMMIT__ === "string" ? __PILOX_MESH_COMMIT__ : "unknown";

export function versionLine(): string {
  return `pilox-mesh ${VERSION} (commit ${COMMIT}, node ${process.versions.node}, ${process.platform}-${process.arch})`;
}
