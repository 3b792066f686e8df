"""Summary Care Records (SCR): the pure rules in one module per concern, and the async service.

Shapes follow NHS Digital's Summary Care Record FHIR API (UploadScrBundle.json,
DocumentReferenceBundle.json, GetScrBundle.json, SetPermission.json, AuditEvent.json):

- An upload is a document Bundle whose Composition has SNOMED type 196981000000101
  (General Practice Summary), `identifier.value` = the SCR id (a UUID), a subject naming the
  patient by NHS number (directly, or by reference to a Patient entry that carries it), and
  sections coded as the real API codes them: `AllergiesHeader` for allergies and adverse
  reactions, and one of `AcuteMedsHeader` / `RepeatMedsHeader` / `DiscRepeatMedsHeader` for
  medications. Both sections must be present; either may be empty (the real example's
  discontinued-medications section is only "No relevant information available").
- The GET /Bundle answer is, as in the real API, a searchset Bundle holding the document's
  entries (Composition first), not the document Bundle itself.
- A patient's state (bucket `scrstate`) holds the current SCR and the consent decision; its
  siblings merge as a join (state.py).

Modules: codes (code systems and codes), ids (SCR ids and the ids derived from them), checks
(refusals that name a JSON path), codec (canonical JSON), upload (validating an upload), builder
(making one), stored (the stored document), state (current SCR and consent), permission (the
$setPermission Parameters), answers (DocumentReference and searchsets), audit (AuditEvents),
service (the async service over the record store).
"""
