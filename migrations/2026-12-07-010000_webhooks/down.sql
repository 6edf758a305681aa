DROP FUNCTION fan_out_webhooks(INTEGER);
DROP TABLE webhook_fanout_head;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
