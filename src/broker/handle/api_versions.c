/* ApiVersions: the APIs and version ranges of tools/kafka_apis.txt. A version newer
 * than ours gets UNSUPPORTED_VERSION with a v0 body (and, like every ApiVersions
 * response, header v0), so clients retry at our maximum. */
#include <errno.h>

#include "broker/dispatch.h"
#include "kafka/errors.h"
#include "kafka/gen/messages.h"

int handle_api_versions(struct request *req)
{
        struct api_versions_response resp;
        api_versions_response_init(&resp);
        bool too_new = req->hdr.api_version > req->api->max_version;
        if (!too_new) {
                struct api_versions_request msg;
                if (api_versions_request_decode(&req->body, req->hdr.api_version, &msg) < 0)
                        return -EPROTO;
        } else {
                resp.error_code = KAFKA_UNSUPPORTED_VERSION;
        }
        resp.api_keys_count = kafka_api_count;
        resp.api_keys = request_alloc(req, kafka_api_count, sizeof(*resp.api_keys));
        for (int i = 0; i < kafka_api_count; i++) {
                struct api_versions_response_api_version *k = &resp.api_keys[i];
                api_versions_response_api_version_init(k);
                k->api_key = kafka_api_table[i].key;
                k->min_version = kafka_api_table[i].min_version;
                k->max_version = kafka_api_table[i].max_version;
        }
        request_respond(req, &resp);
        return 0;
}
