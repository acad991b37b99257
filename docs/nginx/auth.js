// njs helpers for the tower-token-auth gateway (docs/nginx/README.md).
//
// cacheKey: for njs.conf, tested on njs 0.7.9 (Debian bookworm's libnginx-mod-http-js).
// checkWithSharedDict: for njs-shared-dict.conf, needs njs >= 0.8.0 (js_shared_dict_zone);
//   NOT tested here. It only has to parse on 0.7.9, which the tests check.

var crypto = require('crypto');

// A SHA-256 over every Authorization and Cookie header, in order: the gateway reads the token
// from nowhere else, so equal keys mean equal credentials, and the token itself never lands
// in the cache (nginx writes each entry's key into its cache file). '' when there are no
// credentials or on any error; njs.conf never caches under ''.
function cacheKey(r) {
    try {
        var hash = crypto.createHash('sha256');
        var found = false;
        var raw = r.rawHeadersIn;
        for (var i = 0; i < raw.length; i++) {
            var name = raw[i][0].toLowerCase();
            if (name === 'authorization' || name === 'cookie') {
                // Header values cannot hold '\n': the encoding is unambiguous.
                hash.update(name + ':' + raw[i][1] + '\n');
                found = true;
            }
        }
        return found ? hash.digest('hex') : '';
    } catch (e) {
        r.error('tower-token-auth cache key: ' + e);
        return '';
    }
}

var FORWARDED = ['X-Auth-Sub', 'X-Auth-Scope', 'X-Auth-Jti'];

// njs >= 0.8 only (untested here): js_content of the auth_request location. Answers from the
// shared dictionary `tta_auth` when it can, else asks the gateway through the internal
// location /_gateway_auth and remembers accepts (never refusals) until the zone's timeout.
async function checkWithSharedDict(r) {
    var key = cacheKey(r);
    var dict = ngx.shared.tta_auth;
    var hit = key ? dict.get(key) : undefined;
    if (hit) {
        var saved = JSON.parse(hit);
        FORWARDED.forEach(function (h) {
            if (saved[h]) {
                r.headersOut[h] = saved[h];
            }
        });
        r.return(200);
        return;
    }
    var reply = await r.subrequest('/_gateway_auth');
    if (reply.status === 200) {
        var claims = {};
        FORWARDED.forEach(function (h) {
            var v = reply.headersOut[h];
            if (v) {
                claims[h] = v;
                r.headersOut[h] = v;
            }
        });
        if (key) {
            dict.set(key, JSON.stringify(claims));
        }
        r.return(200);
    } else if (reply.status === 401) {
        r.headersOut['WWW-Authenticate'] = reply.headersOut['WWW-Authenticate'] || 'Bearer';
        r.return(401);
    } else if (reply.status === 403) {
        var why = reply.headersOut['X-Auth-Error'];
        if (why) {
            r.headersOut['X-Auth-Error'] = why;
        }
        r.return(403);
    } else {
        // Gateway down or confused: fail closed.
        r.return(500);
    }
}

export default { cacheKey, checkWithSharedDict };
