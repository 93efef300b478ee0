export { jsonObject, looseObject, strictObject } from "./object.ts";
