#!/bin/sh
# Every container of the image starts here. Started as root (the image's default), it makes the
# data directory writable for the service and then drops root for good; started as anyone else
# (`docker run --user …`), it just runs the command.
#
# Whose files: a bind-mounted ./data owned by root (a clone made as root) is handed to the image's
# own user (10001); one owned by someone else (the operator's user, or 10001 from an older image)
# keeps its owner, and the services run as that owner, so the operator can still read and edit
# the files. Anything inside that another user left behind (a `docker compose exec` as root, say)
# is given back to that owner on every start.
set -eu

DATA_DIR="${APP_DATA_DIR:-/app/data}"
APP_UID=10001
APP_GID=10001

if [ "$(id -u)" != "0" ]; then
    exec "$@"
fi

mkdir -p "$DATA_DIR"
owner_uid=$(stat -c %u "$DATA_DIR")
owner_gid=$(stat -c %g "$DATA_DIR")
if [ "$owner_uid" = "0" ]; then
    owner_uid=$APP_UID
    owner_gid=$APP_GID
fi
# -h: change links themselves, never what they point to.
find "$DATA_DIR" \( ! -user "$owner_uid" -o ! -group "$owner_gid" \) -exec chown -h "$owner_uid:$owner_gid" {} +

if [ "$owner_uid" = "$APP_UID" ]; then
    export HOME=/home/assistant
else
    # A user without an entry in /etc/passwd: give it a home it can write to.
    export HOME=/tmp
fi
exec setpriv --reuid="$owner_uid" --regid="$owner_gid" --clear-groups -- "$@"
