"""Names of the temporary tables a resync stages rows and keys in (the target session's pg_temp)."""

STAGE = "dbsplit_stage"
KEYSTAGE = "dbsplit_keystage"
KEYHASH = "dbsplit_keyhash"
KEYHASH_LATE = "dbsplit_keyhash_late"
STAGE_LATE = "dbsplit_stage_late"
ALLKEYS = "dbsplit_allkeys"
ALLMAP = "dbsplit_allmap"
NEWKEYS = "dbsplit_newkeys"
GONE = "dbsplit_gone"
CONFLICTS = "dbsplit_conflicts"
INSERTED = "dbsplit_inserted"
TEMPS = (STAGE, KEYSTAGE, KEYHASH, KEYHASH_LATE, STAGE_LATE, ALLKEYS, ALLMAP, NEWKEYS, GONE, CONFLICTS, INSERTED)
