/** The Pilox v1 spec vectors (spec/ at the repository's root; spec/ORIGIN.md says from where). */
export { SPEC_DIR, vectors } from "../../spec/vectors.ts";
